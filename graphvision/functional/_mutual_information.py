r"""Mutual-information adjacency: a differentiable soft-histogram (Parzen) MI between nodes.

Each node's ``C`` feature values are treated as ``C`` samples of one random variable. For
every pair of nodes of an image the mutual information of the two variables is estimated
from soft (Gaussian-kernel) histograms, and the ``(N, N)`` matrix is sparsified into a graph.

The estimator, per image (batch index dropped). For node :math:`i` with values
:math:`x_{i,1..C}`:

1. min-max normalise: :math:`u_{ic} = (x_{ic} - \min_c x_{ic}) / (\max_c x_{ic} - \min_c x_{ic})`
   (a constant node gets :math:`u = 0`);
2. soft memberships to ``bins`` equal-width bins with centres :math:`\mu_k = (k + 1/2)/\text{bins}`:
   :math:`w_{ic}(k) = \operatorname{softmax}_k\big(-(u_{ic} - \mu_k)^2 / (2\sigma^2)\big)`
   (memberships below ``MIN_MEMBERSHIP`` = 1e-12 are set to 0: no denormal floats),
   :math:`\sigma = \text{bandwidth}/\text{bins}` (``bandwidth`` is in units of the bin width;
   ``bandwidth=0`` is hard binning, :math:`w_{ic} = \text{onehot}(\lfloor \text{bins}\cdot u_{ic}\rfloor)`);
3. marginal :math:`p_i(a) = \frac1C \sum_c w_{ic}(a)`, joint
   :math:`P_{ij}(a, b) = \frac1C \sum_c w_{ic}(a)\, w_{jc}(b)`, i.e. :math:`P_{ij} = W_i^\top W_j / C`
   with :math:`W_i \in \mathbb{R}^{C \times \text{bins}}`; the marginals of :math:`P_{ij}` are
   exactly :math:`p_i` and :math:`p_j`;
4. :math:`\mathrm{MI}_{ij} = \sum_{a,b} P_{ij}(a,b) \log \frac{P_{ij}(a,b)}{p_i(a)\,p_j(b)}
   = H_i + H_j - H_{ij}` (natural log, nats), with :math:`H_i = -\sum_a p_i \log p_i` and
   :math:`H_{ij} = -\sum_{a,b} P_{ij} \log P_{ij}`.

Stacking the :math:`W_i^\top` of all nodes into :math:`A \in \mathbb{R}^{(N\cdot\text{bins}) \times C}`,
all joints are the blocks of one matmul :math:`A A^\top / C`. The joint entropies are therefore
computed tile by tile and the ``(N, N, bins, bins)`` joint histograms are never stored: the
torch path loops over blocks of rows (upper triangle only, mirrored), the Triton kernel
(:mod:`graphvision.ops._triton.k_mutual_information`) keeps one tile of joints in registers.
The backward pass recomputes the joints tile by tile (torch: row chunks; Triton: a second
kernel that owns a block of rows of the gradient and loops over all column tiles), so it is
memory bounded as well.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from graphvision._checks import check_floating, check_positive_int, check_tensor
from graphvision.functional._graph_grid import _CarriesGraph
from graphvision.ops._api import joint_entropy
from graphvision.ops._torch import _xlogx, default_chunk_size
from graphvision.structure import GraphStructure

__all__ = ["mutual_information_adjacency"]


#: Default Gaussian kernel width, in bin widths. Chosen on Gaussian pairs (rho 0.3-0.9,
#: C = 4096-65536 samples): with 32 bins the estimate is within 10% of -0.5 log(1 - rho^2);
#: 1.0 smooths too much (about -30% with 16 bins), 0.25 adds small-sample bias.
DEFAULT_BANDWIDTH = 0.5

#: Soft memberships below this are set to 0 (no denormal floats; see ``_soft_memberships``).
MIN_MEMBERSHIP = 1e-12

#: Accepted ``normalize=`` values.
NORMALIZATIONS = (False, True, "arithmetic", "geometric", "max", "min")

_OUTPUTS = ("dense", "sparse")


# --------------------------------------------------------------------------------------------
# soft memberships
# --------------------------------------------------------------------------------------------


def _soft_memberships(x: Tensor, bins: int, bandwidth: float, inplace: bool = False) -> Tensor:
    """Soft bin memberships ``(B, N, bins, C)`` (``[b, i] = W_i^T``) of each node's min-max normalised values."""
    xmin = x.amin(dim=-1, keepdim=True)
    xmax = x.amax(dim=-1, keepdim=True)
    span = xmax - xmin
    tiny = torch.finfo(x.dtype).tiny
    # constant node -> u = 0 (all mass in the first bin(s); MI with any node is 0)
    u = (x - xmin) / torch.where(span > 0, span, torch.ones_like(span)).clamp_min(tiny)
    u = u.unsqueeze(-2)  # (B, N, 1, C)
    if bandwidth == 0.0:
        idx = (u * bins).floor().clamp(0, bins - 1)
        levels = torch.arange(bins, device=x.device, dtype=x.dtype).view(bins, 1)
        return (idx == levels).to(x.dtype)
    centers = ((torch.arange(bins, device=x.device, dtype=x.dtype) + 0.5) / bins).view(bins, 1)
    sigma = bandwidth / bins
    if inplace:  # no autograd: one (B, N, bins, C) buffer for the logits, one for the softmax
        logits = (u - centers).square_().mul_(-0.5 / (sigma * sigma))
        w = torch.softmax(logits, dim=-2)
        del logits
        return w.masked_fill_(w < MIN_MEMBERSHIP, 0.0)
    logits = (u - centers).square() * (-0.5 / (sigma * sigma))
    w = torch.softmax(logits, dim=-2)
    # Truncate the Gaussian tails: memberships below MIN_MEMBERSHIP (e.g. exp(-80) ~ 1e-35 for far
    # bins) would be denormal floats, which make CPU matmuls ~20x slower; the mass dropped is
    # at most bins * MIN_MEMBERSHIP per sample.
    return torch.where(w >= MIN_MEMBERSHIP, w, torch.zeros_like(w))


_default_chunk_size = default_chunk_size  # the torch kernel's default (runtime) chunking


# --------------------------------------------------------------------------------------------
# public function
# --------------------------------------------------------------------------------------------


def _check_args(
    x: object,
    bins: object,
    bandwidth: object,
    normalize: object,
    top_k: object,
    threshold: object,
    output: object,
    chunk_size: object,
) -> tuple[Tensor, int, float, int | None, int | None]:
    check_tensor(x, "x")
    assert isinstance(x, Tensor)
    if x.dim() not in (2, 3):
        raise ValueError(f"Expected 'x' of shape (B, N, C) or (N, C) (got {tuple(x.shape)})")
    check_floating(x, "x")
    if x.size(-1) < 1:
        raise ValueError(f"Expected 'x' of shape (B, N, C) with C >= 1 samples per node (got {tuple(x.shape)})")
    bins_i = check_positive_int(bins, "bins", minimum=2)
    if bandwidth is None:
        bw = DEFAULT_BANDWIDTH
    elif isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)):
        raise TypeError(f"Expected 'bandwidth' to be a float >= 0 or None (got {type(bandwidth).__name__})")
    else:
        bw = float(bandwidth)
        if not (bw >= 0.0 and math.isfinite(bw)):
            raise ValueError(f"Expected 'bandwidth' >= 0 (got {bandwidth})")
    if normalize not in NORMALIZATIONS or isinstance(normalize, int) and not isinstance(normalize, bool):
        raise ValueError(f"Expected 'normalize' to be one of {NORMALIZATIONS} (got {normalize!r})")
    k = None if top_k is None else check_positive_int(top_k, "top_k", minimum=1)
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise TypeError(f"Expected 'threshold' to be a float or None (got {type(threshold).__name__})")
    if output not in _OUTPUTS:
        raise ValueError(f"Unknown output {output!r}; expected one of {_OUTPUTS}")
    chunk = None if chunk_size is None else check_positive_int(chunk_size, "chunk_size", minimum=1)
    return x, bins_i, bw, k, chunk


def mutual_information_adjacency(
    x: Tensor,
    bins: int = 16,
    bandwidth: float | None = None,
    normalize: bool | str = False,
    top_k: int | None = None,
    threshold: float | None = None,
    symmetric: bool = True,
    loop: bool = False,
    output: str = "dense",
    chunk_size: int | None = None,
    backend: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Graph of pairwise mutual information between node feature vectors (soft histograms).

    Each node's ``C`` values are taken as ``C`` samples of a variable; the MI of every pair of
    nodes of an image is estimated with a differentiable Parzen (Gaussian-kernel) soft
    histogram, as in the mutual-information graphs of RMCG ("Relation-aware multi-channel
    attention based graph convolutional network", breast cancer histopathology):

    .. math::
        \mathrm{MI}_{ij} = \sum_{a,b=1}^{\text{bins}} P_{ij}(a,b)
        \log\frac{P_{ij}(a,b)}{p_i(a)\,p_j(b)}, \qquad
        P_{ij} = \tfrac{1}{C}\, W_i^\top W_j, \quad p_i = \tfrac{1}{C}\, W_i^\top \mathbf{1}

    where :math:`W_i \in [0,1]^{C \times \text{bins}}` holds the soft memberships of node
    :math:`i`'s min-max normalised values to ``bins`` equal-width bins,
    :math:`W_i[c, k] = \operatorname{softmax}_k(-(u_{ic} - \mu_k)^2 / 2\sigma^2)`,
    :math:`\sigma = \text{bandwidth} / \text{bins}` (see the module docstring). ``bandwidth=0``
    gives hard equal-width binning: then :math:`\mathrm{MI}_{ij}` equals
    ``sklearn.metrics.mutual_info_score`` of the bin labels. Soft binning smooths the joint (it
    biases MI down; too few samples per bin bias it up). With the default ``bandwidth`` (half a
    bin), 32 bins and 16k samples, Gaussian pairs with correlation 0.3-0.9 come within 10% of
    :math:`-\tfrac12\log(1-\rho^2)`; with 16 bins about 15-25% low. The ranking of pairs by
    dependence is what a graph needs, and it is preserved.

    With ``normalize``, the MI is divided by the node entropies :math:`H_i = -\sum p_i\log p_i`:
    ``True`` or ``"arithmetic"``: :math:`2\,\mathrm{MI}/(H_i + H_j)` (scikit-learn's default
    NMI); ``"geometric"``: :math:`\mathrm{MI}/\sqrt{H_i H_j}`; ``"max"`` / ``"min"``:
    :math:`\mathrm{MI}/\max(H_i, H_j)` / :math:`\mathrm{MI}/\min(H_i, H_j)`. All lie in
    :math:`[0, 1]`; a pair with a zero denominator (a constant node under hard binning)
    gets 0. A constant node has (numerically) zero MI with every node.

    The adjacency keeps, in this order: the ``top_k`` largest entries of each row ``i`` among
    ``j != i`` (fewer when ``N - 1 < top_k``), then those ``>= threshold``; with ``symmetric``,
    the union of the kept pattern and its transpose (the MI values are symmetric); with
    ``loop``, the diagonal (value :math:`\mathrm{MI}_{ii} = 2H_i - H_{ii} \le H_i`, equal
    to :math:`H_i` with hard binning). Without ``top_k`` and
    ``threshold`` every off-diagonal pair is kept. Row ``i`` of the dense matrix holds the
    weights of the edges *into* node ``i`` (``out = A @ x`` aggregates), and the sparse form
    is ``edge_index = [source j, target i]`` as in PyG, sorted by target. With ``top_k``,
    ``symmetric=False`` and no ``threshold`` the number of edges is static
    (:math:`E = B N k`, plus :math:`B N` self loops, which come first in each target's group;
    sources in decreasing MI) and sparse output works under ``torch.compile(fullgraph=True)``;
    otherwise :math:`E` depends on the data (``nonzero``), which ``torch.compile`` handles only
    with ``torch._dynamo.config.capture_dynamic_output_shape_ops = True``.

    Memory: the ``(N, N, bins, bins)`` joint histograms are never stored. The torch path
    processes ``chunk_size`` rows at a time (default: the largest that keeps the temporaries
    under ``CHUNK_MEMORY_BUDGET`` = 256 MiB); the Triton kernel (CUDA; float32, float16 or
    bfloat16 inputs, computed in float32) accumulates each tile of joints on chip and writes
    only the ``(B, N, N)`` joint entropies, using TF32 tensor cores when
    ``torch.get_float32_matmul_precision()`` is not ``"highest"``. In ``"auto"`` mode the
    kernels are first checked once per device against the torch path on a tiny input; if that
    fails, a ``RuntimeWarning`` is issued and torch is used. Half-precision inputs are
    computed in float32 and the result is cast back.

    Gradients flow through both paths; the backward recomputes the joints (torch row chunks, or
    a fused Triton backward kernel after a Triton forward) instead of storing them; double
    backward is not supported. ``top_k`` / ``threshold`` select edges without a gradient, the
    kept weights carry it.

    Args:
        x: Node features, ``(B, N, C)`` (or ``(N, C)`` for one image), floating point.
        bins: Number of histogram bins (``>= 2``).
        bandwidth: Gaussian kernel width in units of the bin width (default ``0.5``); ``0``
            for hard binning (no gradient).
        normalize: ``False`` (MI in nats) or a normalisation, see above.
        top_k: Keep the ``top_k`` largest MI values per row (target node).
        threshold: Keep entries ``>= threshold``.
        symmetric: Symmetrise the kept pattern (union with its transpose).
        loop: Keep the diagonal.
        output: ``"dense"`` for a ``(B, N, N)`` matrix (zeros where no edge) or ``"sparse"``
            for ``(edge_index, edge_weight)`` with node ``b * N + i`` for node ``i`` of image ``b``.
        chunk_size: Rows per chunk of the torch path (default from the memory budget).
        backend: ``None`` (from :func:`graphvision.config.get_backend`), ``"auto"``, ``"torch"``
            or ``"triton"`` (``RuntimeError`` when it cannot run), chosen by the ops dispatcher
            (``graphvision.ops._api.joint_entropy``): ``"auto"`` uses Triton on CUDA when the
            input suits the fused kernel, torch elsewhere.

    Returns:
        The dense adjacency, or the tuple ``(edge_index, edge_weight)``.

    Shape:
        - x: :math:`(B, N, C)` or :math:`(N, C)`
        - output (dense): :math:`(B, N, N)` or :math:`(N, N)`
        - output (sparse): edge_index :math:`(2, E)` int64, edge_weight :math:`(E,)`

    Example:
        >>> x = torch.randn(2, 10, 64)
        >>> mutual_information_adjacency(x, bins=8).shape
        torch.Size([2, 10, 10])
        >>> edge_index, edge_weight = mutual_information_adjacency(x, top_k=3, symmetric=False, output="sparse")
        >>> edge_index.shape, edge_weight.shape
        (torch.Size([2, 60]), torch.Size([60]))
    """
    x, bins, bw, k, chunk = _check_args(x, bins, bandwidth, normalize, top_k, threshold, output, chunk_size)
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(0)
    bsz, n, c = x.shape
    out_dtype = x.dtype
    if x.dtype in (torch.float16, torch.bfloat16):  # histograms and logs in float32
        x = x.float()

    # no autograd needed -> reuse buffers in place (keeps the 8 x 3136-node case under 1 GB)
    inplace = not (torch.is_grad_enabled() and x.requires_grad)
    a = _soft_memberships(x, bins, bw, inplace)  # (B, N, bins, C): rows of A = W_i^T
    p = a.mean(dim=-1)  # (B, N, bins) marginals
    h = -_xlogx(p).sum(dim=-1)  # (B, N) marginal entropies
    hj = joint_entropy(a, chunk, backend=backend)
    del a
    hi, hk = h.unsqueeze(2), h.unsqueeze(1)
    if inplace:
        # (H_i + H_j) first: a sum of two terms is exactly symmetric, ((-H_ij + H_i) + H_j) is not
        mi = (hi + hk).sub_(hj).clamp_min_(0.0)
        del hj
    else:
        mi = ((hi + hk) - hj).clamp_min(0.0)
    if normalize is not False:
        if normalize is True or normalize == "arithmetic":
            den = 0.5 * (hi + hk)
        elif normalize == "geometric":
            den = (hi * hk).clamp_min(0.0).sqrt()
        elif normalize == "max":
            den = torch.maximum(hi, hk)
        else:
            den = torch.minimum(hi, hk)
        pos = den > torch.finfo(x.dtype).eps
        den = torch.where(pos, den, torch.ones_like(den))
        if inplace:
            mi = mi.div_(den).masked_fill_(~pos, 0.0).clamp_max_(1.0)
        else:
            mi = torch.where(pos, mi / den, torch.zeros_like(mi)).clamp_max(1.0)

    mi = mi.to(out_dtype)
    if output == "sparse" and k is not None and threshold is None and not symmetric and n > 1:
        # static number of edges (B * N * k [+ B * N]): no nonzero(), works under torch.compile
        return _sparse(*_topk_edges(mi, min(k, n - 1), loop), bsz * n)
    if output == "dense" and inplace and k is None and threshold is None:
        if not loop:  # every off-diagonal pair kept: no (B, N, N) mask needed
            mi.diagonal(dim1=1, dim2=2).zero_()
        return mi.squeeze(0) if unbatched else mi
    mask = _edge_mask(mi, k, threshold, symmetric, loop)
    if output == "dense":
        if mask is None:
            adj = mi
        elif inplace:
            adj = mi.masked_fill_(~mask, 0.0)
        else:
            adj = torch.where(mask, mi, torch.zeros_like(mi))
        return adj.squeeze(0) if unbatched else adj
    if mask is None:
        mask = torch.ones(bsz, n, n, dtype=torch.bool, device=x.device)
    bi, ti, si = mask.nonzero(as_tuple=True)
    edge_index = torch.stack([bi * n + si, bi * n + ti])
    return _sparse(edge_index, mi[bi, ti, si], bsz * n)


class SparseAdjacency(NamedTuple):
    """The sparse output of :func:`mutual_information_adjacency` (unpacks as ``edge_index, edge_weight``).

    Attributes:
        edge_index: ``(2, E)`` int64 edges ``source -> target`` over the ``B * N`` nodes, target-major.
        edge_weight: ``(E,)`` mutual information of every edge (differentiable).
    """

    edge_index: Tensor
    edge_weight: Tensor


class _SparseAdjacencyWithGraph(_CarriesGraph, SparseAdjacency):
    """:class:`SparseAdjacency` carrying the structure in ``.graph`` (target-sorted, built without a sort)."""


def _sparse(edge_index: Tensor, edge_weight: Tensor, num_nodes: int) -> SparseAdjacency:
    out = _SparseAdjacencyWithGraph(edge_index, edge_weight)
    out.__dict__["graph"] = GraphStructure._trusted(edge_index, num_nodes, num_nodes, sorted_by_target=True)
    return out


def _topk_edges(mi: Tensor, k: int, loop: bool) -> tuple[Tensor, Tensor]:
    """Edges ``j -> i`` for the ``k`` largest ``mi[b, i, j]`` (``j != i``) of each row, target-major."""
    bsz, n, _ = mi.shape
    eye = torch.eye(n, dtype=torch.bool, device=mi.device)
    idx = mi.detach().masked_fill(eye, float("-inf")).topk(k, dim=-1).indices  # (B, N, k)
    if loop:
        diag = torch.arange(n, device=mi.device).view(1, n, 1).expand(bsz, n, 1)
        idx = torch.cat([diag, idx], dim=-1)
    weight = mi.gather(2, idx)
    per = idx.size(-1)
    offset = (torch.arange(bsz, device=mi.device) * n).view(bsz, 1, 1)
    target = (torch.arange(n, device=mi.device).view(1, n, 1) + offset).expand(bsz, n, per)
    edge_index = torch.stack([(idx + offset).reshape(-1), target.reshape(-1)])
    return edge_index, weight.reshape(-1)


def _edge_mask(
    mi: Tensor, top_k: int | None, threshold: float | None, symmetric: bool, loop: bool
) -> Tensor | None:
    """Boolean ``(B, N, N)`` pattern of kept entries, or ``None`` when every entry is kept."""
    bsz, n, _ = mi.shape
    if top_k is None and threshold is None and loop:
        return None
    eye = torch.eye(n, dtype=torch.bool, device=mi.device)
    if top_k is not None and n > 1:
        kk = min(top_k, n - 1)
        scores = mi.detach().masked_fill(eye, float("-inf"))
        idx = scores.topk(kk, dim=-1).indices
        mask = torch.zeros(bsz, n, n, dtype=torch.bool, device=mi.device).scatter_(2, idx, True)
    elif top_k is not None:
        mask = torch.zeros(bsz, n, n, dtype=torch.bool, device=mi.device)
    else:
        mask = (~eye).expand(bsz, n, n)
    if threshold is not None:
        mask = mask & (mi.detach() >= threshold)
    if symmetric and top_k is not None:
        mask = mask | mask.transpose(1, 2)
    if loop:
        mask = mask | eye
    else:
        mask = mask & ~eye
    return mask
