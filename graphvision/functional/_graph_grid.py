"""Pixel-grid and patch graphs, feature-similarity edge weights and the way back to images.

Node numbering is row-major and image-major: node ``b*H*W + y*W + x`` is pixel ``(y, x)`` of
image ``b``. Edge lists are returned sorted by target, then by source, which is the canonical
order of :mod:`graphvision.ops` (so the dispatcher's sort is a no-op copy).
"""

from __future__ import annotations

import numbers
from collections import OrderedDict
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from graphvision._checks import (
    check_choice,
    check_floating,
    check_positive_int,
    check_same_device,
    check_shape,
    check_tensor,
    is_compiling,
    sync_checks_enabled,
)
from graphvision.structure import GraphStructure, _version_of

__all__ = [
    "ImageGraph",
    "WeightedImageGraph",
    "grid_graph",
    "image_to_graph",
    "patch_graph",
    "edge_similarity",
    "nodes_to_image",
]

CONNECTIVITIES = (4, 8)
SIMILARITIES = ("cosine", "gaussian")
PATCH_FEATURES = ("mean", "flatten")
UPSAMPLE_MODES = ("nearest", "bilinear")


class _ImageGraphFields(NamedTuple):
    x: Tensor
    edge_index: Tensor
    batch: Tensor


class _WeightedImageGraphFields(NamedTuple):
    x: Tensor
    edge_index: Tensor
    batch: Tensor
    edge_weight: Tensor


class _CarriesGraph:
    """The ``graph`` attribute of the converters' results: the :class:`~graphvision.GraphStructure`.

    It shares ``edge_index``'s memory and carries what the converter already knew (target-sorted
    CSR, no sort, no re-check). A result rebuilt by ``_replace`` / ``_make`` gets a structure
    (validated once) built from its ``edge_index`` on first access.
    """

    __slots__ = ()
    x: Tensor
    edge_index: Tensor

    def __getattr__(self, name: str) -> GraphStructure:
        if name != "graph":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        graph = GraphStructure(self.edge_index, int(self.x.size(0)))
        self.__dict__["graph"] = graph
        return graph


class ImageGraph(_CarriesGraph, _ImageGraphFields):
    """A batch of graphs built from images (unpacks as ``x, edge_index, batch``).

    Attributes:
        x: ``(N, F)`` node features.
        edge_index: ``(2, E)`` int64 edges, ``edge_index[0]`` source, ``edge_index[1]`` target,
            sorted by target then source.
        batch: ``(N,)`` int64 image index of every node (sorted).
        graph: The :class:`~graphvision.GraphStructure` of ``edge_index`` (same memory): pass it
            to the layers instead of ``edge_index`` and everything derived from the graph (sorted
            CSR, self-loops, normalisation) is computed once and reused. Not part of the tuple.
    """

    def __new__(cls, x: Tensor, edge_index: Tensor, batch: Tensor, graph: GraphStructure | None = None) -> ImageGraph:
        self = super().__new__(cls, x, edge_index, batch)
        if graph is not None:
            self.__dict__["graph"] = graph
        return self


class WeightedImageGraph(_CarriesGraph, _WeightedImageGraphFields):
    """An :class:`ImageGraph` with one weight per edge (unpacks as ``x, edge_index, batch, edge_weight``).

    Returned by the converters when an ``edge_weight`` similarity is asked for.

    Attributes:
        x: ``(N, F)`` node features.
        edge_index: ``(2, E)`` int64 edges (source, target), sorted by target then source.
        batch: ``(N,)`` int64 image index of every node.
        edge_weight: ``(E,)`` weight of every edge, differentiable with respect to ``x``.
        graph: The :class:`~graphvision.GraphStructure` of ``edge_index`` (see :class:`ImageGraph`).
    """

    def __new__(
        cls, x: Tensor, edge_index: Tensor, batch: Tensor, edge_weight: Tensor, graph: GraphStructure | None = None
    ) -> WeightedImageGraph:
        self = super().__new__(cls, x, edge_index, batch, edge_weight)
        if graph is not None:
            self.__dict__["graph"] = graph
        return self


def _check_size(value: object, name: str) -> int:
    return check_positive_int(value, name, minimum=0)


def _offsets(connectivity: int, dilation: int, loop: bool) -> list[tuple[int, int]]:
    """Neighbour offsets ``(dy, dx)`` in row-major order (so sources come out sorted)."""
    out = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                if loop:
                    out.append((0, 0))
                continue
            if connectivity == 4 and dy != 0 and dx != 0:
                continue
            out.append((dy * dilation, dx * dilation))
    return out


def _grid_num_edges(height: int, width: int, offsets: list[tuple[int, int]]) -> int:
    return sum(max(height - abs(dy), 0) * max(width - abs(dx), 0) for dy, dx in offsets)


def grid_graph(
    height: int,
    width: int,
    connectivity: int = 8,
    dilation: int = 1,
    loop: bool = False,
    *,
    batch_size: int = 1,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Edges of the 4- or 8-neighbour pixel grid of ``batch_size`` images of size ``height x width``.

    Pixel :math:`(y, x)` of image :math:`b` is node :math:`bHW + yW + x`. Two pixels are
    neighbours when they differ by ``dilation`` along one axis (4-neighbour), or along one or
    both axes (8-neighbour). Every edge appears in both directions; self-loops only when asked.
    Per image there are :math:`4HW - 2(H + W)` edges for ``connectivity=4`` and
    :math:`8HW - 6(H + W) + 4` for ``connectivity=8`` (``dilation=1``, :math:`H, W \ge 1`).

    The edge list is sorted by target, then source, and is built with tensor operations only
    (no Python loop over pixels or images), so it works under ``torch.compile(fullgraph=True)``.
    The last few grids built are cached per size, options and device, so a model that rebuilds
    the same grid every forward pass pays one copy; the result is always a new tensor.

    Args:
        height: Image height ``H`` (``0`` gives no edges).
        width: Image width ``W``.
        connectivity: ``4`` or ``8`` neighbours.
        dilation: Distance in pixels between neighbours (``2`` links every other pixel).
        loop: Add the edge ``i -> i`` for every pixel.
        batch_size: Number of images ``B``; image ``b``'s nodes are offset by ``b*H*W``.
        device: Device of the result.

    Returns:
        ``edge_index`` of int64 node ids; ``edge_index[0]`` are sources, ``edge_index[1]`` targets.

    Shape:
        - output: :math:`(2, E)` with :math:`E = B \cdot E_{image}`

    Example:
        >>> from graphvision.functional import grid_graph
        >>> grid_graph(3, 4).shape  # 8*12 - 6*7 + 4
        torch.Size([2, 58])
        >>> grid_graph(2, 2, connectivity=4)
        tensor([[1, 2, 0, 3, 0, 3, 1, 2],
                [0, 0, 1, 1, 2, 2, 3, 3]])
    """
    height = _check_size(height, "height")
    width = _check_size(width, "width")
    batch_size = _check_size(batch_size, "batch_size")
    check_choice(connectivity, CONNECTIVITIES, "connectivity")
    dilation = check_positive_int(dilation, "dilation")
    offsets = _offsets(connectivity, dilation, bool(loop))
    num_edges = _grid_num_edges(height, width, offsets)
    if num_edges == 0 or batch_size == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    return _grid_structure(height, width, offsets, num_edges, batch_size, device).edge_index.clone()


def _grid_structure(
    height: int,
    width: int,
    offsets: list[tuple[int, int]],
    num_edges: int,
    batch_size: int,
    device: torch.device | str | None,
) -> GraphStructure:
    """The grid as a trusted, target-sorted structure; the last few are cached per size and device.

    A cached structure keeps what layers derived from it (CSR, self-looped graph, GCN
    normalisation, kernel index arrays), so a model that converts same-sized images every
    forward pass derives them once. An entry whose ``edge_index`` was edited in place (its
    version moved) is rebuilt. Not cached while ``torch.compile`` traces.
    """
    n = batch_size * height * width

    def build() -> GraphStructure:
        if num_edges == 0 or batch_size == 0:
            ei = torch.empty(2, 0, dtype=torch.long, device=device)
        else:
            ei = _build_grid(height, width, offsets, num_edges, batch_size, device)
        return GraphStructure._trusted(ei, n, n, sorted_by_target=True)

    if is_compiling():
        return build()
    key = ("grid", height, width, tuple(offsets), batch_size, _device_key(device))
    cached = _CACHE.get(key)
    if cached is None or _version_of(cached.edge_index) != cached._version or cached._version is None:
        cached = build()
        _CACHE[key] = cached
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return cached


#: Small LRU cache of built grid structures and batch vectors, keyed by size, options and device
#: (never by tensor identity). Grid structures are checked against in-place edits on every hit;
#: batch vectors and :func:`grid_graph` results are handed out as clones. Bypassed while
#: ``torch.compile`` traces.
_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_CACHE_SIZE = 16
_CACHE_MAX_ELEMENTS = 1 << 26  # never cache a tensor over 512 MiB of int64


def _device_key(device: torch.device | str | None) -> str:
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return str(dev)


def _cache_put(key: tuple, value: Tensor) -> Tensor:
    if value.numel() <= _CACHE_MAX_ELEMENTS:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def _build_grid(
    height: int,
    width: int,
    offsets: list[tuple[int, int]],
    num_edges: int,
    batch_size: int,
    device: torch.device | str | None,
) -> Tensor:
    src, dst, keep = _grid_layout(height, width, offsets, num_edges, device)
    edge_index = torch.stack([src.index_select(0, keep), dst.index_select(0, keep)])
    if batch_size == 1:
        return edge_index
    shift = torch.arange(batch_size, device=device).mul_(height * width).view(1, batch_size, 1)
    return (edge_index.view(2, 1, num_edges) + shift).reshape(2, batch_size * num_edges)


def _batch_vector(batch_size: int, nodes_per_image: int, device: torch.device | str | None) -> Tensor:
    """``(B * n,)`` image index of every node (cached like the grids; always a fresh tensor)."""
    if is_compiling() or batch_size * nodes_per_image == 0:
        return torch.arange(batch_size, device=device).repeat_interleave(nodes_per_image)
    key = ("batch", batch_size, nodes_per_image, _device_key(device))
    cached = _CACHE.get(key)
    if cached is None:
        value = torch.arange(batch_size, device=device).repeat_interleave(nodes_per_image)
        cached = _cache_put(key, value)
    return cached.clone()


def _grid_layout(
    height: int, width: int, offsets: list[tuple[int, int]], num_edges: int, device: torch.device | str | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Source and target of every (pixel, offset) slot ``(H*W*K,)`` and the slots that are edges ``(E,)``.

    Slots are row-major over ``(y, x, k)``, i.e. target-major with sources ascending (the
    offsets are in row-major order), so the kept slots come out sorted by (target, source).
    ``keep`` is found with a cumulative sum and a scatter into a tensor of the known size
    ``num_edges`` (invalid slots go to a dump entry): static shapes, no graph break under
    ``torch.compile``.
    """
    off = torch.tensor(offsets, dtype=torch.long, device=device)  # (K, 2)
    ys = torch.arange(height, device=device).view(height, 1, 1)
    xs = torch.arange(width, device=device).view(1, width, 1)
    ny = ys + off[:, 0].view(1, 1, -1)  # (H, 1, K)
    nx = xs + off[:, 1].view(1, 1, -1)  # (1, W, K)
    valid = (((ny >= 0) & (ny < height)) & ((nx >= 0) & (nx < width))).reshape(-1)  # (H*W*K,)
    src = (ny * width + nx).expand(height, width, -1).reshape(-1)
    dst = (ys * width + xs).expand(height, width, off.size(0)).reshape(-1)
    pos = torch.where(valid, torch.cumsum(valid, 0) - 1, num_edges)
    slots = torch.arange(valid.numel(), device=device)
    keep = torch.zeros(num_edges + 1, dtype=torch.long, device=device).scatter_(0, pos, slots)[:num_edges]
    return src, dst, keep


def _grid_similarity(
    image: Tensor, offsets: list[tuple[int, int]], num_edges: int, metric: str, sigma: float, eps: float = 1e-8
) -> Tensor:
    """Similarity of every grid edge computed on shifted copies of the image (no gather per edge).

    Equal to ``edge_similarity(x, grid edges)`` in the grid's edge order, but it reads the image
    ``K`` times contiguously instead of gathering two ``(E, C)`` tensors, which is several times
    faster forward and backward.
    """
    b, c, h, w = image.shape
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    if is_compiling():
        _, _, keep = _grid_layout(h, w, offsets, num_edges, image.device)
    else:
        key = ("keep", h, w, tuple(offsets), _device_key(image.device))
        keep = _CACHE.get(key)  # internal use only (never handed out), so no clone
        if keep is None:
            keep = _cache_put(key, _grid_layout(h, w, offsets, num_edges, image.device)[2])
    if metric == "cosine":
        norm = image.norm(dim=1)  # (B, H, W)
        norm_p = F.pad(norm, (pad, pad, pad, pad))
    padded = F.pad(image, (pad, pad, pad, pad))
    maps = []
    for dy, dx in offsets:
        nb = padded[:, :, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
        if metric == "cosine":
            nb_norm = norm_p[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
            maps.append((nb * image).sum(dim=1) / (nb_norm * norm).clamp_min(eps))
        else:
            maps.append((nb - image).pow(2).sum(dim=1))
    weight = torch.stack(maps, dim=-1).reshape(b, -1).index_select(1, keep).reshape(-1)
    if metric == "gaussian":
        weight = torch.exp(weight / (-2.0 * float(sigma) ** 2))
    return weight


def edge_similarity(
    x: Tensor,
    edge_index: Tensor,
    metric: str = "cosine",
    sigma: float = 1.0,
    eps: float = 1e-8,
) -> Tensor:
    r"""Feature similarity of the two end nodes of every edge.

    - ``"cosine"``: :math:`w_{ij} = \frac{x_i \cdot x_j}{\max(\|x_i\| \|x_j\|, \epsilon)}`, in :math:`[-1, 1]`;
    - ``"gaussian"``: :math:`w_{ij} = \exp\left(-\frac{\|x_i - x_j\|^2}{2\sigma^2}\right)`, in :math:`(0, 1]`.

    Differentiable with respect to ``x``. Memory is :math:`O(E \cdot F)` (the two end points of
    every edge are gathered).

    Args:
        x: Node features.
        edge_index: Edges (source, target).
        metric: ``"cosine"`` or ``"gaussian"``.
        sigma: Bandwidth of the Gaussian kernel (``> 0``).
        eps: Floor of the norm product for the cosine.

    Returns:
        One weight per edge, in ``x``'s dtype.

    Shape:
        - x: :math:`(N, F)`
        - edge_index: :math:`(2, E)`
        - output: :math:`(E,)`

    Example:
        >>> from graphvision.functional import edge_similarity
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> edge_similarity(x, torch.tensor([[0, 0], [1, 2]]))
        tensor([0.0000, 0.7071])
    """
    check_shape(x, ["N", "F"], "x")
    check_floating(x, "x")
    check_tensor(edge_index, "edge_index")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"Expected 'edge_index' of shape (2, E) (got {tuple(edge_index.shape)})")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"Expected 'edge_index' of dtype torch.int64 or torch.int32 (got {edge_index.dtype})")
    check_same_device("x", x, "edge_index", edge_index)
    check_choice(metric, SIMILARITIES, "metric")
    _check_sigma(sigma)
    if sync_checks_enabled() and edge_index.numel() > 0:  # no guard on a data-dependent E under compile
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= x.size(0):
            raise IndexError(
                f"Found indices in 'edge_index' outside of [0, {x.size(0)}) (got min {lo}, max {hi}; "
                f"num_nodes=x.size(0)={x.size(0)})"
            )
    src, dst = edge_index[0], edge_index[1]
    if metric == "cosine":
        xs, xd = x.index_select(0, src), x.index_select(0, dst)
        norm = (xs.norm(dim=1) * xd.norm(dim=1)).clamp_min(eps)
        return (xs * xd).sum(dim=1) / norm
    diff = x.index_select(0, src) - x.index_select(0, dst)
    return torch.exp(diff.pow(2).sum(dim=1) / (-2.0 * float(sigma) ** 2))


def _graph_result(
    x: Tensor, graph: GraphStructure, batch: Tensor, similarity: str | None, sigma: float
) -> ImageGraph | WeightedImageGraph:
    edge_index = graph.edge_index
    if similarity is None:
        return ImageGraph(x, edge_index, batch, graph)
    return WeightedImageGraph(x, edge_index, batch, edge_similarity(x, edge_index, similarity, sigma), graph)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_sigma(sigma: object) -> None:
    if not (_is_real(sigma) and sigma > 0):  # type: ignore[operator]
        raise ValueError(f"Expected 'sigma' > 0 (got {sigma!r})")


def _check_similarity(similarity: str | None, sigma: float) -> None:
    if similarity is not None:
        check_choice(similarity, SIMILARITIES, "similarity")
    _check_sigma(sigma)


def _check_image(image: object) -> Tensor:
    image = check_tensor(image, "image")
    check_shape(image, ["B", "C", "H", "W"], "image")
    if not image.is_floating_point():
        raise TypeError(
            f"Expected 'image' to have a floating-point dtype (got {image.dtype}); convert it, e.g. image.float() / 255"
        )
    return image


def image_to_graph(
    image: Tensor,
    connectivity: int = 8,
    dilation: int = 1,
    loop: bool = False,
    similarity: str | None = None,
    sigma: float = 1.0,
) -> ImageGraph | WeightedImageGraph:
    r"""Turn a batch of images into one pixel graph: one node per pixel, grid edges.

    Node :math:`bHW + yW + x` is pixel :math:`(y, x)` of image :math:`b` and its features are
    the pixel's :math:`C` channel values. Edges are those of :func:`grid_graph` offset per image,
    built once and broadcast (no Python loop over the batch), on the image's device. With
    ``similarity`` set, every edge also gets a feature similarity (see :func:`edge_similarity`).

    ``x`` is a view of ``image`` (no copy) when ``image`` is ``channels_last``, else a copy.

    Args:
        image: A batch of images.
        connectivity: ``4`` or ``8`` neighbours.
        dilation: Distance in pixels between neighbours.
        loop: Add ``i -> i`` edges.
        similarity: ``None``, ``"cosine"`` or ``"gaussian"`` similarity of the two pixels' features.
        sigma: Bandwidth of the ``"gaussian"`` similarity.

    Returns:
        :class:`ImageGraph` ``(x, edge_index, batch)``, or :class:`WeightedImageGraph`
        ``(x, edge_index, batch, edge_weight)`` when ``similarity`` is given.

    Shape:
        - image: :math:`(B, C, H, W)`
        - x: :math:`(B \cdot H \cdot W, C)`
        - edge_index: :math:`(2, E)`, ``torch.long``, sorted by target
        - batch: :math:`(B \cdot H \cdot W,)`, ``torch.long``
        - edge_weight: :math:`(E,)`

    Example:
        >>> from graphvision.functional import image_to_graph
        >>> x, edge_index, batch = image_to_graph(torch.rand(2, 3, 4, 5), connectivity=4)
        >>> x.shape, edge_index.shape, batch.shape
        (torch.Size([40, 3]), torch.Size([2, 124]), torch.Size([40]))
        >>> graph = image_to_graph(torch.rand(1, 3, 4, 4), similarity="gaussian", sigma=0.5)
        >>> graph.edge_weight.shape
        torch.Size([84])
    """
    image = _check_image(image)
    _check_similarity(similarity, sigma)
    b, c, h, w = image.shape
    x = rearrange(image, "b c h w -> (b h w) c")  # node b*H*W + y*W + x
    check_choice(connectivity, CONNECTIVITIES, "connectivity")
    offsets = _offsets(connectivity, check_positive_int(dilation, "dilation"), bool(loop))
    num_edges = _grid_num_edges(h, w, offsets)
    graph = _grid_structure(h, w, offsets, num_edges, b, image.device)
    edge_index = graph.edge_index
    batch = _batch_vector(b, h * w, image.device)
    if similarity is None:
        return ImageGraph(x, edge_index, batch, graph)
    if num_edges == 0 or b == 0:
        return WeightedImageGraph(x, edge_index, batch, image.new_empty(0), graph)
    weight = _grid_similarity(image, offsets, num_edges, similarity, sigma)
    return WeightedImageGraph(x, edge_index, batch, weight, graph)


def patch_graph(
    image: Tensor,
    patch_size: int,
    k: int | None = None,
    connectivity: int = 8,
    features: str = "mean",
    metric: str = "euclidean",
    loop: bool = False,
    similarity: str | None = None,
    sigma: float = 1.0,
) -> ImageGraph | WeightedImageGraph:
    r"""Turn a batch of images into a graph of non-overlapping ``P x P`` patches (ViG style).

    Patch :math:`(i, j)` of image :math:`b` is node :math:`b H_p W_p + i W_p + j` with
    :math:`H_p = H / P`, :math:`W_p = W / P`. Its features are the patch's mean colour
    (``features="mean"``, :math:`C` values) or its flattened pixels (``"flatten"``, :math:`C P^2`
    values, ordered ``(c, dy, dx)``). Edges link neighbouring patches on the patch grid
    (``k=None``, see :func:`grid_graph`), or each patch to its ``k`` nearest patches of the same
    image in feature space (as `Vision GNN <https://arxiv.org/abs/2206.00272>`_; see
    :func:`knn_graph`, edges point from the neighbour to the patch).

    Args:
        image: A batch of images; ``H`` and ``W`` must be multiples of ``patch_size``.
        patch_size: Side ``P`` of the square patches.
        k: Number of nearest neighbours, or ``None`` for grid edges.
        connectivity: ``4`` or ``8``, for grid edges.
        features: ``"mean"`` or ``"flatten"``.
        metric: ``"euclidean"`` or ``"cosine"``, for kNN edges.
        loop: For kNN edges, whether a patch may be its own neighbour; for grid edges, whether
            to add self-loops.
        similarity: ``None``, ``"cosine"`` or ``"gaussian"`` similarity of the patch features.
        sigma: Bandwidth of the ``"gaussian"`` similarity.

    Returns:
        :class:`ImageGraph` ``(x, edge_index, batch)``, or :class:`WeightedImageGraph` with
        ``edge_weight`` when ``similarity`` is given. Use :func:`nodes_to_image` with ``patch_size`` to map node values back.

    Shape:
        - image: :math:`(B, C, H, W)`
        - x: :math:`(B H_p W_p, C)` or :math:`(B H_p W_p, C P^2)`
        - edge_index: :math:`(2, E)`; :math:`E = B H_p W_p k` for kNN edges
        - batch: :math:`(B H_p W_p,)`

    Example:
        >>> from graphvision.functional import patch_graph
        >>> x, edge_index, batch = patch_graph(torch.rand(2, 3, 32, 32), patch_size=8, k=4)
        >>> x.shape, edge_index.shape
        (torch.Size([32, 3]), torch.Size([2, 128]))
        >>> patch_graph(torch.rand(1, 3, 8, 8), patch_size=4, features="flatten").x.shape
        torch.Size([4, 48])
    """
    from graphvision.functional._graph_knn import METRICS, _check_finite, _fixed_degree_structure, _knn_dense

    image = _check_image(image)
    p = check_positive_int(patch_size, "patch_size")
    check_choice(features, PATCH_FEATURES, "features")
    check_choice(metric, METRICS, "metric")
    _check_similarity(similarity, sigma)
    b, c, h, w = image.shape
    if h % p or w % p:
        raise ValueError(
            f"Expected 'image' height and width to be multiples of patch_size={p} (got H={h}, W={w}); "
            "crop or pad the image first"
        )
    hp, wp = h // p, w // p
    n = hp * wp
    if features == "mean":
        # mean over each p x p patch, then patches to nodes (einops' reduce here was 1.7x slower:
        # benchmarks/bench_einops.py)
        x = rearrange(image.reshape(b, c, hp, p, wp, p).mean(dim=(3, 5)), "b c hp wp -> (b hp wp) c")
    else:
        x = rearrange(image, "b c (hp p1) (wp p2) -> (b hp wp) (c p1 p2)", p1=p, p2=p)
    batch = _batch_vector(b, n, image.device)
    if k is None:
        check_choice(connectivity, CONNECTIVITIES, "connectivity")
        offsets = _offsets(connectivity, 1, bool(loop))
        graph = _grid_structure(hp, wp, offsets, _grid_num_edges(hp, wp, offsets), b, image.device)
    else:
        k = check_positive_int(k, "k")
        limit = n if loop else n - 1
        if b * n > 0 and k > limit:
            raise ValueError(
                f"Expected 'k' <= {limit} (the {n} patches per image{'' if loop else ' minus the patch itself'}) "
                f"(got k={k})"
            )
        if b * n == 0:
            graph = GraphStructure._trusted(torch.empty(2, 0, dtype=torch.long, device=image.device), 0, 0)
        else:
            feats = x.detach().view(b, n, -1)
            _check_finite(feats)
            nbr = _knn_dense(feats, k, loop=bool(loop), metric=metric, chunk_size=None)
            shift = torch.arange(b, device=image.device).mul_(n).view(b, 1, 1)
            # k neighbours per patch, target-major: a fixed-degree structure, no sort, no check
            graph = _fixed_degree_structure((nbr + shift).reshape(b * n, k), b * n if loop else 0)
    return _graph_result(x, graph, batch, similarity, sigma)


def nodes_to_image(
    values: Tensor,
    height: int,
    width: int,
    *,
    patch_size: int = 1,
    labels: Tensor | None = None,
    batch_size: int | None = None,
    mode: str = "nearest",
) -> Tensor:
    r"""Map node values back onto the image: the inverse of the converters, for heatmaps.

    - pixel graphs (:func:`image_to_graph`, ``patch_size=1``): node :math:`bHW + yW + x` fills
      pixel :math:`(y, x)` of image :math:`b` (a reshape, no copy of the data beyond the permute);
    - patch graphs (:func:`patch_graph`): each patch's value fills its :math:`P \times P` block
      (``mode="nearest"``) or is bilinearly upsampled from the patch centres (``"bilinear"``);
    - superpixel graphs (:func:`superpixel_graph`): pass its ``labels`` (node id of every pixel)
      and every pixel takes the value of its superpixel.

    Differentiable with respect to ``values``.

    Args:
        values: One value per node, or ``K`` values per node (for example one per head).
        height: Image height ``H``.
        width: Image width ``W``.
        patch_size: Patch side ``P`` used to build the graph (``1`` for pixel graphs).
        labels: Node id of every pixel, for superpixel graphs (``height``/``width`` must match).
        batch_size: Number of images ``B``; inferred from the number of nodes when ``None``.
        mode: ``"nearest"`` or ``"bilinear"`` upsampling of patch values.

    Returns:
        The heatmap, in ``values``'s dtype.

    Shape:
        - values: :math:`(N,)` or :math:`(N, K)`
        - labels: :math:`(B, H, W)`, integer, values in :math:`[0, N)`
        - output: :math:`(B, H, W)` or :math:`(B, K, H, W)`

    Example:
        >>> from graphvision.functional import image_to_graph, nodes_to_image
        >>> image = torch.rand(2, 3, 4, 6)
        >>> x, edge_index, batch = image_to_graph(image)
        >>> torch.equal(nodes_to_image(x, 4, 6), image)
        True
        >>> nodes_to_image(torch.rand(6, 2), 16, 24, patch_size=8).shape  # 1 image of 2x3 patches
        torch.Size([1, 2, 16, 24])
    """
    check_tensor(values, "values")
    if values.dim() not in (1, 2):
        raise ValueError(f"Expected 'values' of shape (N,) or (N, K) (got {tuple(values.shape)})")
    h = _check_size(height, "height")
    w = _check_size(width, "width")
    p = check_positive_int(patch_size, "patch_size")
    check_choice(mode, UPSAMPLE_MODES, "mode")
    squeeze = values.dim() == 1
    vals = values.unsqueeze(1) if squeeze else values
    n, kk = vals.shape
    if labels is not None:
        check_tensor(labels, "labels")
        check_shape(labels, ["B", "H", "W"], "labels")
        if labels.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"Expected 'labels' of dtype torch.int64 or torch.int32 (got {labels.dtype})")
        if labels.shape[1] != h or labels.shape[2] != w:
            raise ValueError(
                f"Expected 'labels' of shape (B, {h}, {w}) to match height and width (got {tuple(labels.shape)})"
            )
        check_same_device("values", values, "labels", labels)
        if batch_size is not None and labels.shape[0] != batch_size:
            raise ValueError(f"Expected 'labels' of shape ({batch_size}, H, W) (got {tuple(labels.shape)})")
        if labels.numel() > 0 and sync_checks_enabled():
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= n:
                raise IndexError(
                    f"Found node ids in 'labels' outside of [0, {n}) (got min {lo}, max {hi}; "
                    f"N=values.size(0)={n})"
                )
        out = vals.index_select(0, labels.reshape(-1).long()).view(labels.shape[0], h, w, kk).permute(0, 3, 1, 2)
        return out[:, 0] if squeeze else out
    if h % p or w % p:
        raise ValueError(f"Expected height and width to be multiples of patch_size={p} (got H={h}, W={w})")
    hp, wp = h // p, w // p
    per_image = hp * wp
    if batch_size is None:
        if per_image == 0:
            raise ValueError(f"Cannot infer the batch size of an empty {h}x{w} image; pass 'batch_size'")
        if n % per_image:
            raise ValueError(
                f"Expected 'values' with a multiple of {per_image} nodes ({hp}x{wp} "
                f"{'pixels' if p == 1 else 'patches'} per image) (got {n})"
            )
        b = n // per_image
    else:
        b = _check_size(batch_size, "batch_size")
        if n != b * per_image:
            raise ValueError(
                f"Expected 'values' with batch_size*{hp}*{wp} = {b * per_image} nodes (got {n})"
            )
    grid = rearrange(vals, "(b hp wp) k -> b k hp wp", b=b, hp=hp, wp=wp)
    if p > 1 and b * kk * per_image > 0:
        if mode == "nearest":
            grid = grid.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)
        else:
            grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
    elif p > 1:
        grid = grid.new_zeros(b, kk, h, w)
    return grid[:, 0] if squeeze else grid

