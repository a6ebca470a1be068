"""Modules over the image-to-graph converters of :mod:`graphvision.functional`.

They hold no parameters: each stores its options and calls its functional twin, so a
converter can sit inside an :class:`torch.nn.Sequential` or a model's ``__init__`` and show
its settings in ``print(model)``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from graphvision._checks import check_choice, check_positive_int
from graphvision.functional._graph_grid import (
    CONNECTIVITIES,
    ImageGraph,
    PATCH_FEATURES,
    UPSAMPLE_MODES,
    WeightedImageGraph,
    _check_similarity,
    _is_real,
    image_to_graph,
    nodes_to_image,
    patch_graph,
)
from graphvision.functional._graph_knn import METRICS, knn_graph, radius_graph
from graphvision.functional._graph_superpixel import RegionGraph, superpixel_graph

__all__ = ["ImageToGraph", "PatchGraph", "KNNGraph", "RadiusGraph", "SuperpixelGraph", "NodesToImage"]


def _check_similarity_args(similarity: str | None, sigma: float) -> None:
    _check_similarity(similarity, sigma)


def _similarity_repr(similarity: str | None, sigma: float) -> str:
    if similarity is None:
        return ""
    return f", similarity={similarity!r}" + (f", sigma={sigma}" if similarity == "gaussian" else "")


class ImageToGraph(nn.Module):
    r"""Pixel graph of a batch of images: one node per pixel, 4- or 8-neighbour grid edges.

    See :func:`graphvision.functional.image_to_graph`.

    Args:
        connectivity: ``4`` or ``8`` neighbours.
        dilation: Distance in pixels between neighbours.
        loop: Add ``i -> i`` edges.
        similarity: ``None``, ``"cosine"`` or ``"gaussian"`` feature similarity per edge.
        sigma: Bandwidth of the ``"gaussian"`` similarity.

    Shape:
        - image: :math:`(B, C, H, W)`
        - x: :math:`(B H W, C)`
        - edge_index: :math:`(2, E)`
        - batch: :math:`(B H W,)`
        - edge_weight: :math:`(E,)` when asked for

    Example:
        >>> from graphvision.nn import ImageToGraph
        >>> to_graph = ImageToGraph(connectivity=4)
        >>> to_graph
        ImageToGraph(connectivity=4)
        >>> x, edge_index, batch = to_graph(torch.rand(2, 3, 8, 8))
        >>> x.shape, edge_index.shape
        (torch.Size([128, 3]), torch.Size([2, 448]))
    """

    #: What the layer supports (read by the docs' capability table).
    _capabilities = {"batched": True, "per_sample_graph": "n/a", "edge_weight": "feature similarity (optional)", "fused_kernel": False, "compile_safe": True, "deterministic": True}

    def __init__(
        self,
        connectivity: int = 8,
        dilation: int = 1,
        loop: bool = False,
        similarity: str | None = None,
        sigma: float = 1.0,
    ) -> None:
        super().__init__()
        check_choice(connectivity, CONNECTIVITIES, "connectivity")
        _check_similarity_args(similarity, sigma)
        self.connectivity = connectivity
        self.dilation = check_positive_int(dilation, "dilation")
        self.loop = bool(loop)
        self.similarity = similarity
        self.sigma = sigma

    def forward(self, image: Tensor) -> ImageGraph | WeightedImageGraph:
        """Convert ``image`` (see the class docstring)."""
        return image_to_graph(image, self.connectivity, self.dilation, self.loop, self.similarity, self.sigma)

    def extra_repr(self) -> str:
        s = f"connectivity={self.connectivity}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.loop:
            s += ", loop=True"
        return s + _similarity_repr(self.similarity, self.sigma)


class PatchGraph(nn.Module):
    r"""Graph of non-overlapping ``P x P`` patches (ViG style), with grid or kNN edges.

    See :func:`graphvision.functional.patch_graph`.

    Args:
        patch_size: Side ``P`` of the square patches.
        k: Number of nearest neighbours in feature space, or ``None`` for patch-grid edges.
        connectivity: ``4`` or ``8``, for grid edges.
        features: ``"mean"`` (``C`` values per patch) or ``"flatten"`` (``C P^2`` values).
        metric: ``"euclidean"`` or ``"cosine"``, for kNN edges.
        loop: Self-loops (grid) or a patch as its own neighbour (kNN).
        similarity: ``None``, ``"cosine"`` or ``"gaussian"`` feature similarity per edge.
        sigma: Bandwidth of the ``"gaussian"`` similarity.

    Shape:
        - image: :math:`(B, C, H, W)`, ``H`` and ``W`` multiples of ``P``
        - x: :math:`(B H_p W_p, C)` or :math:`(B H_p W_p, C P^2)`
        - edge_index: :math:`(2, E)`
        - batch: :math:`(B H_p W_p,)`

    Example:
        >>> from graphvision.nn import PatchGraph
        >>> to_graph = PatchGraph(4, k=3)
        >>> to_graph
        PatchGraph(patch_size=4, k=3)
        >>> to_graph(torch.rand(2, 3, 16, 16)).edge_index.shape
        torch.Size([2, 96])
    """

    #: What the layer supports (read by the docs' capability table).
    _capabilities = {"batched": True, "per_sample_graph": "n/a", "edge_weight": "feature similarity (optional)", "fused_kernel": False, "compile_safe": True, "deterministic": True}

    def __init__(
        self,
        patch_size: int,
        k: int | None = None,
        connectivity: int = 8,
        features: str = "mean",
        metric: str = "euclidean",
        loop: bool = False,
        similarity: str | None = None,
        sigma: float = 1.0,
    ) -> None:
        super().__init__()
        self.patch_size = check_positive_int(patch_size, "patch_size")
        self.k = None if k is None else check_positive_int(k, "k")
        check_choice(connectivity, CONNECTIVITIES, "connectivity")
        check_choice(features, PATCH_FEATURES, "features")
        check_choice(metric, METRICS, "metric")
        _check_similarity_args(similarity, sigma)
        self.connectivity = connectivity
        self.features = features
        self.metric = metric
        self.loop = bool(loop)
        self.similarity = similarity
        self.sigma = sigma

    def forward(self, image: Tensor) -> ImageGraph | WeightedImageGraph:
        """Convert ``image`` (see the class docstring)."""
        return patch_graph(
            image,
            self.patch_size,
            self.k,
            self.connectivity,
            self.features,
            self.metric,
            self.loop,
            self.similarity,
            self.sigma,
        )

    def extra_repr(self) -> str:
        s = f"patch_size={self.patch_size}"
        if self.k is None:
            s += f", connectivity={self.connectivity}"
        else:
            s += f", k={self.k}" + (f", metric={self.metric!r}" if self.metric != "euclidean" else "")
        if self.features != "mean":
            s += f", features={self.features!r}"
        if self.loop:
            s += ", loop=True"
        return s + _similarity_repr(self.similarity, self.sigma)


class KNNGraph(nn.Module):
    r"""Edges from each node's ``k`` nearest neighbours (same graph) to the node.

    See :func:`graphvision.functional.knn_graph`.

    Args:
        k: Number of neighbours.
        loop: Whether a node counts as its own neighbour.
        metric: ``"euclidean"`` or ``"cosine"``.
        chunk_size: Query rows per block of distances (default: bounded memory).

    Shape:
        - x: :math:`(N, F)`
        - batch: :math:`(N,)`, sorted, optional
        - output: :math:`(2, N k)`

    Example:
        >>> from graphvision.nn import KNNGraph
        >>> knn = KNNGraph(k=2, metric="cosine")
        >>> knn
        KNNGraph(k=2, metric='cosine')
        >>> knn(torch.randn(10, 4)).shape
        torch.Size([2, 20])
    """

    #: What the layer supports (read by the docs' capability table).
    _capabilities = {"batched": True, "per_sample_graph": "batch vector", "edge_weight": False, "fused_kernel": False, "compile_safe": True, "deterministic": True}

    def __init__(self, k: int, loop: bool = False, metric: str = "euclidean", chunk_size: int | None = None) -> None:
        super().__init__()
        self.k = check_positive_int(k, "k")
        check_choice(metric, METRICS, "metric")
        self.loop = bool(loop)
        self.metric = metric
        self.chunk_size = None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        """Return the ``edge_index`` of the kNN graph of ``x``."""
        return knn_graph(x, self.k, batch, self.loop, self.metric, self.chunk_size)

    def extra_repr(self) -> str:
        s = f"k={self.k}"
        if self.loop:
            s += ", loop=True"
        if self.metric != "euclidean":
            s += f", metric={self.metric!r}"
        if self.chunk_size is not None:
            s += f", chunk_size={self.chunk_size}"
        return s


class RadiusGraph(nn.Module):
    r"""Edges between nodes of the same graph at distance at most ``r``.

    See :func:`graphvision.functional.radius_graph`.

    Args:
        r: Radius.
        loop: Whether to keep ``i -> i``.
        max_num_neighbors: Largest number of (nearest) neighbours per node, or ``None``.
        metric: ``"euclidean"`` or ``"cosine"``.
        chunk_size: Query rows per block of distances.

    Shape:
        - x: :math:`(N, F)`
        - batch: :math:`(N,)`, sorted, optional
        - output: :math:`(2, E)`

    Example:
        >>> from graphvision.nn import RadiusGraph
        >>> radius = RadiusGraph(r=1.5)
        >>> radius
        RadiusGraph(r=1.5, max_num_neighbors=32)
        >>> radius(torch.tensor([[0.0], [1.0], [3.0]]))
        tensor([[1, 0],
                [0, 1]])
    """

    #: What the layer supports (read by the docs' capability table).
    _capabilities = {"batched": True, "per_sample_graph": "batch vector", "edge_weight": False, "fused_kernel": False, "compile_safe": "with capture_dynamic_output_shape_ops", "deterministic": True}

    def __init__(
        self,
        r: float,
        loop: bool = False,
        max_num_neighbors: int | None = 32,
        metric: str = "euclidean",
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if not _is_real(r):
            raise TypeError(f"Expected 'r' to be a number (got {type(r).__name__}: {r!r})")
        if not r >= 0:
            raise ValueError(f"Expected 'r' >= 0 (got {r})")
        check_choice(metric, METRICS, "metric")
        self.r = r
        self.loop = bool(loop)
        self.max_num_neighbors = (
            None if max_num_neighbors is None else check_positive_int(max_num_neighbors, "max_num_neighbors")
        )
        self.metric = metric
        self.chunk_size = None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        """Return the ``edge_index`` of the radius graph of ``x``."""
        return radius_graph(x, self.r, batch, self.loop, self.max_num_neighbors, self.metric, self.chunk_size)

    def extra_repr(self) -> str:
        s = f"r={self.r}"
        if self.loop:
            s += ", loop=True"
        s += f", max_num_neighbors={self.max_num_neighbors}"
        if self.metric != "euclidean":
            s += f", metric={self.metric!r}"
        if self.chunk_size is not None:
            s += f", chunk_size={self.chunk_size}"
        return s


class SuperpixelGraph(nn.Module):
    r"""Region-adjacency graph of superpixels (SLIC, or label maps you pass in).

    See :func:`graphvision.functional.superpixel_graph`. SLIC needs scikit-image
    (``pip install "graphvision[superpixel]"``); passing ``labels`` to ``forward`` does not.

    Args:
        n_segments: Approximate number of SLIC superpixels per image.
        compactness: SLIC compactness.
        connectivity: ``4`` or ``8``: which touching pixels make two regions adjacent.
        loop: Add ``i -> i``.
        similarity: ``None``, ``"cosine"`` or ``"gaussian"`` feature similarity per edge.
        sigma: Bandwidth of the ``"gaussian"`` similarity.
        slic_kwargs: Extra keyword arguments for :func:`skimage.segmentation.slic`.

    Shape:
        - image: :math:`(B, C, H, W)`
        - labels: :math:`(B, H, W)`, optional
        - output: :class:`~graphvision.functional.RegionGraph` with ``x`` :math:`(N, C)`,
          ``edge_index`` :math:`(2, E)`, ``batch`` :math:`(N,)`, ``labels`` :math:`(B, H, W)`,
          ``pos`` :math:`(N, 2)`

    Example:
        >>> from graphvision.nn import SuperpixelGraph
        >>> to_graph = SuperpixelGraph(n_segments=16)
        >>> to_graph
        SuperpixelGraph(n_segments=16, compactness=10.0, connectivity=4)
        >>> graph = to_graph(torch.rand(1, 3, 32, 32))
        >>> graph.labels.shape
        torch.Size([1, 32, 32])
    """

    #: What the layer supports (read by the docs' capability table).
    _capabilities = {"batched": True, "per_sample_graph": "n/a", "edge_weight": "feature similarity (optional)", "fused_kernel": False, "compile_safe": "with labels= and capture_dynamic_output_shape_ops (SLIC in scikit-image is a graph break)", "deterministic": "CPU only"}

    def __init__(
        self,
        n_segments: int = 100,
        compactness: float = 10.0,
        connectivity: int = 4,
        loop: bool = False,
        similarity: str | None = None,
        sigma: float = 1.0,
        slic_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.n_segments = check_positive_int(n_segments, "n_segments")
        if not (_is_real(compactness) and compactness > 0):
            raise ValueError(f"Expected 'compactness' > 0 (got {compactness!r})")
        check_choice(connectivity, CONNECTIVITIES, "connectivity")
        _check_similarity_args(similarity, sigma)
        self.compactness = float(compactness)
        self.connectivity = connectivity
        self.loop = bool(loop)
        self.similarity = similarity
        self.sigma = sigma
        self.slic_kwargs = dict(slic_kwargs or {})

    def forward(self, image: Tensor, labels: Tensor | None = None) -> RegionGraph:
        """Convert ``image``, with SLIC labels unless ``labels`` is given."""
        return superpixel_graph(
            image,
            labels,
            n_segments=self.n_segments,
            compactness=self.compactness,
            connectivity=self.connectivity,
            loop=self.loop,
            similarity=self.similarity,
            sigma=self.sigma,
            slic_kwargs=self.slic_kwargs,
        )

    def extra_repr(self) -> str:
        s = f"n_segments={self.n_segments}, compactness={self.compactness}, connectivity={self.connectivity}"
        if self.loop:
            s += ", loop=True"
        if self.slic_kwargs:
            s += f", slic_kwargs={self.slic_kwargs!r}"
        return s + _similarity_repr(self.similarity, self.sigma)


class NodesToImage(nn.Module):
    r"""Map node values back onto the image (heatmaps) for pixel, patch and superpixel graphs.

    See :func:`graphvision.functional.nodes_to_image`.

    Args:
        height: Image height ``H``.
        width: Image width ``W``.
        patch_size: Patch side ``P`` of a patch graph (``1`` for pixel graphs).
        mode: ``"nearest"`` or ``"bilinear"`` upsampling of patch values.

    Shape:
        - values: :math:`(N,)` or :math:`(N, K)`
        - labels: :math:`(B, H, W)`, optional (superpixel graphs)
        - output: :math:`(B, H, W)` or :math:`(B, K, H, W)`

    Example:
        >>> from graphvision.nn import NodesToImage
        >>> to_image = NodesToImage(32, 32, patch_size=8)
        >>> to_image
        NodesToImage(height=32, width=32, patch_size=8)
        >>> to_image(torch.rand(2 * 16, 4)).shape
        torch.Size([2, 4, 32, 32])
    """

    #: What the layer supports (read by the docs' capability table).
    _capabilities = {"batched": True, "per_sample_graph": "n/a", "edge_weight": "n/a", "fused_kernel": False, "compile_safe": True, "deterministic": True}

    def __init__(self, height: int, width: int, patch_size: int = 1, mode: str = "nearest") -> None:
        super().__init__()
        self.height = check_positive_int(height, "height", minimum=0)
        self.width = check_positive_int(width, "width", minimum=0)
        self.patch_size = check_positive_int(patch_size, "patch_size")
        check_choice(mode, UPSAMPLE_MODES, "mode")
        self.mode = mode

    def forward(self, values: Tensor, labels: Tensor | None = None, batch_size: int | None = None) -> Tensor:
        """Return the heatmap of ``values`` (``labels`` for superpixel graphs)."""
        return nodes_to_image(
            values,
            self.height,
            self.width,
            patch_size=self.patch_size,
            labels=labels,
            batch_size=batch_size,
            mode=self.mode,
        )

    def extra_repr(self) -> str:
        s = f"height={self.height}, width={self.width}"
        if self.patch_size != 1:
            s += f", patch_size={self.patch_size}"
        if self.mode != "nearest":
            s += f", mode={self.mode!r}"
        return s
