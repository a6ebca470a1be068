"""Superpixel (region-adjacency) graphs: SLIC label maps, scatter-mean nodes, vectorised edges."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from einops import rearrange
from torch import Tensor

from graphvision._checks import (
    check_choice,
    check_positive_int,
    check_same_device,
    check_shape,
    check_tensor,
    sync_checks_enabled,
)
from graphvision.structure import GraphStructure
from graphvision.functional._graph_grid import (
    _CarriesGraph,
    CONNECTIVITIES,
    _check_similarity,
    _check_image,
    _is_real,
    edge_similarity,
)

__all__ = ["RegionGraph", "slic_superpixels", "superpixel_graph"]


class _RegionGraphFields(NamedTuple):
    x: Tensor
    edge_index: Tensor
    batch: Tensor
    labels: Tensor
    pos: Tensor
    edge_weight: Tensor | None


class RegionGraph(_CarriesGraph, _RegionGraphFields):
    """A superpixel graph of a batch of images: one node per region, edges between touching regions.

    Attributes:
        x: ``(N, C)`` mean pixel features of every region.
        edge_index: ``(2, E)`` int64 edges between regions that touch, both directions, sorted by
            target then source.
        batch: ``(N,)`` int64 image index of every region (sorted).
        labels: ``(B, H, W)`` int64 node id of every pixel (global, so
            ``x[labels]`` paints node values back; see :func:`nodes_to_image`).
        pos: ``(N, 2)`` centroid ``(y, x)`` of every region, in pixels, in ``x``'s dtype.
        edge_weight: ``(E,)`` feature similarity of every edge, or ``None`` when not asked for.
        graph: The :class:`~graphvision.GraphStructure` of ``edge_index`` (same memory, built by
            the converter without a sort or a check). Not part of the tuple.
    """

    def __new__(
        cls,
        x: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        labels: Tensor,
        pos: Tensor,
        edge_weight: Tensor | None,
        graph: GraphStructure | None = None,
    ) -> RegionGraph:
        self = super().__new__(cls, x, edge_index, batch, labels, pos, edge_weight)
        if graph is not None:
            self.__dict__["graph"] = graph
        return self


def slic_superpixels(
    image: Tensor,
    n_segments: int = 100,
    compactness: float = 10.0,
    **slic_kwargs: Any,
) -> Tensor:
    r"""SLIC superpixel label maps of a batch of images, with scikit-image.

    Runs :func:`skimage.segmentation.slic` on every image (on the CPU, one image at a time:
    SLIC itself is not batched) with ``start_label=0`` and the channels last. With three
    channels scikit-image converts to Lab first, which expects RGB values in :math:`[0, 1]`.

    Requires scikit-image (``pip install "graphvision[superpixel]"``); to avoid it, compute label
    maps any other way and pass them to :func:`superpixel_graph`.

    Args:
        image: A batch of images.
        n_segments: Approximate number of superpixels per image.
        compactness: Balance of colour and space proximity (higher: more square superpixels).
        **slic_kwargs: Passed to :func:`skimage.segmentation.slic` (``sigma``, ``max_num_iter``,
            ``convert2lab``, ``mask``, ...).

    Returns:
        int64 label maps on the image's device, labels from 0 within each image.

    Shape:
        - image: :math:`(B, C, H, W)`
        - output: :math:`(B, H, W)`

    Example:
        >>> from graphvision.functional import slic_superpixels
        >>> labels = slic_superpixels(torch.rand(2, 3, 32, 32), n_segments=16)
        >>> labels.shape, labels.dtype
        (torch.Size([2, 32, 32]), torch.int64)
    """
    image = _check_image(image)
    n_segments = check_positive_int(n_segments, "n_segments")
    if not (_is_real(compactness) and compactness > 0):
        raise ValueError(f"Expected 'compactness' > 0 (got {compactness!r})")
    try:
        from skimage.segmentation import slic
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "slic_superpixels needs scikit-image: pip install 'graphvision[superpixel]' (or pass your own "
            "label map to superpixel_graph(image, labels=...))"
        ) from err
    b, _, h, w = image.shape
    out = torch.zeros(b, h, w, dtype=torch.long)
    if h * w == 0:
        return out.to(image.device)
    arr = image.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy()
    kwargs = {"start_label": 0, "channel_axis": -1, **slic_kwargs}
    for i in range(b):
        out[i] = torch.from_numpy(slic(arr[i], n_segments=n_segments, compactness=float(compactness), **kwargs))
    return out.to(image.device)


def _region_edges(labels: Tensor, num_nodes: int, connectivity: int, loop: bool) -> Tensor:
    """Both-direction edges between node ids that touch in ``labels (B, H, W)``, sorted by target."""
    pairs = [(labels[:, :, :-1], labels[:, :, 1:]), (labels[:, :-1, :], labels[:, 1:, :])]
    if connectivity == 8:
        pairs += [(labels[:, :-1, :-1], labels[:, 1:, 1:]), (labels[:, :-1, 1:], labels[:, 1:, :-1])]
    a = torch.cat([p.reshape(-1) for p, _ in pairs])
    b = torch.cat([q.reshape(-1) for _, q in pairs])
    keep = a != b
    a, b = a[keep], b[keep]
    src, dst = torch.cat([a, b]), torch.cat([b, a])
    if loop:
        loops = torch.arange(num_nodes, device=labels.device)
        src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
    key = torch.unique(dst * num_nodes + src)  # sorted: target-major, then source
    return torch.stack([key % num_nodes, key // num_nodes])


def superpixel_graph(
    image: Tensor,
    labels: Tensor | None = None,
    *,
    n_segments: int = 100,
    compactness: float = 10.0,
    connectivity: int = 4,
    loop: bool = False,
    similarity: str | None = None,
    sigma: float = 1.0,
    slic_kwargs: dict[str, Any] | None = None,
) -> RegionGraph:
    r"""Turn a batch of images into a region-adjacency graph of superpixels.

    Every distinct label of an image is one node whose features are the mean of its pixels'
    features (a scatter-mean, differentiable with respect to ``image``) and whose position is
    its centroid. Two regions are linked, both ways, when some pixel of one is a 4-neighbour
    (``connectivity=4``) or 8-neighbour of a pixel of the other. Everything after the label map
    is vectorised tensor code on the image's device: the adjacency compares each pixel's label
    with its right and lower (and diagonal) neighbours' and keeps the distinct pairs.

    Labels come from ``labels`` when given (any integer map, e.g. from a tissue segmentation;
    scikit-image is then not needed), else from :func:`slic_superpixels`. Nodes are numbered
    image by image in increasing label order, so an image's labels need not be consecutive.
    A label that appears in two disconnected places is one node.

    The number of regions depends on the data, so the function synchronises with the host
    (once, for the largest label). With a given ``labels`` map it traces under
    ``torch.compile(fullgraph=True)`` when ``torch._dynamo.config.capture_scalar_outputs`` and
    ``capture_dynamic_output_shape_ops`` are on (input checks that need the host are skipped
    while compiling); SLIC itself runs in scikit-image, outside any graph.

    Args:
        image: A batch of images.
        labels: Label map per image (non-negative integers), or ``None`` to run SLIC.
        n_segments: Approximate number of SLIC superpixels per image (when ``labels`` is ``None``).
        compactness: SLIC compactness (when ``labels`` is ``None``).
        connectivity: ``4`` or ``8``: which touching pixels make two regions adjacent.
        loop: Add ``i -> i`` for every region.
        similarity: ``None``, ``"cosine"`` or ``"gaussian"`` similarity of the region features.
        sigma: Bandwidth of the ``"gaussian"`` similarity.
        slic_kwargs: Extra keyword arguments for :func:`slic_superpixels`.

    Returns:
        :class:`RegionGraph` ``(x, edge_index, batch, labels, pos, edge_weight)``. Use
        ``nodes_to_image(values, H, W, labels=graph.labels)`` to paint node values back.

    Shape:
        - image: :math:`(B, C, H, W)`
        - labels: :math:`(B, H, W)`, integer
        - x: :math:`(N, C)`; N = total number of regions
        - edge_index: :math:`(2, E)`
        - batch: :math:`(N,)`
        - pos: :math:`(N, 2)`

    Example:
        >>> from graphvision.functional import superpixel_graph
        >>> image = torch.rand(1, 3, 4, 4)
        >>> labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]])
        >>> graph = superpixel_graph(image, labels)
        >>> graph.x.shape, graph.edge_index
        (torch.Size([4, 3]), tensor([[1, 2, 0, 3, 0, 3, 1, 2],
                [0, 0, 1, 1, 2, 2, 3, 3]]))
        >>> graph.pos[0]
        tensor([0.5000, 0.5000])
    """
    image = _check_image(image)
    check_choice(connectivity, CONNECTIVITIES, "connectivity")
    _check_similarity(similarity, sigma)
    b, c, h, w = image.shape
    if labels is None:
        labels = slic_superpixels(image, n_segments, compactness, **(slic_kwargs or {}))
    else:
        check_tensor(labels, "labels")
        check_shape(labels, ["B", "H", "W"], "labels")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"Expected 'labels' of an integer dtype (got {labels.dtype})")
        if tuple(labels.shape) != (b, h, w):
            raise ValueError(
                f"Expected 'labels' of shape (B, H, W) = {(b, h, w)} to match 'image' {tuple(image.shape)} "
                f"(got {tuple(labels.shape)})"
            )
        check_same_device("image", image, "labels", labels)
    device = image.device
    lab = labels.long()
    if lab.numel() == 0:
        empty = torch.empty(0, dtype=torch.long, device=device)
        ew = image.new_empty(0) if similarity is not None else None
        edge_index = torch.empty(2, 0, dtype=torch.long, device=device)
        return RegionGraph(image.new_empty(0, c), edge_index, empty, lab, image.new_empty(0, 2), ew)
    if sync_checks_enabled():
        lo = int(lab.min())
        if lo < 0:
            raise ValueError(f"Expected 'labels' >= 0 (got min {lo})")
    span = lab.max().item() + 1  # not int(): torch.export (non-strict) keeps .item() symbolic
    torch._check(span >= 1)
    key = (torch.arange(b, device=device).view(b, 1, 1) * span + lab).reshape(-1)
    uniq, inv = torch.unique(key, sorted=True, return_inverse=True)
    num_nodes = uniq.numel()
    batch = uniq // span
    counts = torch.bincount(inv, minlength=num_nodes).unsqueeze(1)
    feats = rearrange(image, "b c h w -> (b h w) c")
    x = feats.new_zeros(num_nodes, c).index_add(0, inv, feats) / counts.to(feats.dtype)
    pdtype = image.dtype
    ys = torch.arange(h, device=device, dtype=pdtype).view(1, h, 1).expand(b, h, w)
    xs = torch.arange(w, device=device, dtype=pdtype).view(1, 1, w).expand(b, h, w)
    coords = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1)
    pos = coords.new_zeros(num_nodes, 2).index_add_(0, inv, coords) / counts.to(pdtype)
    node_labels = inv.view(b, h, w)
    edge_index = _region_edges(node_labels, num_nodes, connectivity, bool(loop))
    ew = None if similarity is None else edge_similarity(x, edge_index, similarity, sigma)
    graph = GraphStructure._trusted(edge_index, x.size(0), x.size(0), sorted_by_target=True)
    return RegionGraph(x, edge_index, batch, node_labels, pos, ew, graph)
