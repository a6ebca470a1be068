r"""Graph convolution modules over :mod:`graphvision.functional` (``_conv``).

Parameter names follow PyTorch Geometric (``lin.weight``, ``att_src``, ``att_dst``, ``bias``,
``weight1``, ``weight2``, ``nn``), so a PyG ``GCNConv``, ``GATConv``, ``GCN2Conv`` or ``NNConv``
state dict loads into the graphvision twin with :meth:`torch.nn.Module.load_state_dict`.

Capabilities: each class has a private ``_capabilities`` dict (read by the docs to build the
capability table): ``batched`` (``(B, N, F)`` with a shared graph), ``per_sample_graph``,
``edge_weight``, ``fused_kernel`` (runs on one fused :mod:`graphvision.ops` kernel),
``compile_safe`` (``torch.compile(fullgraph=True)``), ``deterministic`` (deterministic with the
default torch / Triton backends, which reduce over a sorted CSR without atomics).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from graphvision._checks import check_choice, check_positive_int, is_compiling
from graphvision.functional._conv import (
    AGGREGATIONS,
    FILL_REDUCES,
    AttentionGCNOptions,
    AttentionWeights,
    GATOptions,
    GCNNorm,
    _check_unit,
    _gcn_norm_of,
    attention_gcn_conv,
    check_x,
    edge_conditioned_conv,
    gat_conv,
    gcn2_conv,
    gcn_conv,
    prepare_attention_graph,
    resolve_graph,
)
from graphvision.functional._graph_input import GraphLike, WeightLike
from graphvision.structure import GraphStructure, _version_of

__all__ = ["GCNConv", "GATConv", "AttentionGCNConv", "GCN2Conv", "EdgeConditionedConv"]


def glorot_(t: Tensor | None) -> None:
    """Glorot-uniform init over the last two dimensions (PyG's ``glorot``)."""
    if t is not None:
        a = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
        with torch.no_grad():
            t.uniform_(-a, a)


def zeros_(t: Tensor | None) -> None:
    if t is not None:
        with torch.no_grad():
            t.zero_()


def _is_lazy(m: nn.Module) -> bool:
    """A lazy module whose parameters are not sized yet (``in_channels=-1`` before the first call)."""
    return isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params()


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"Expected '{name}' to be a bool (got {type(value).__name__}: {value!r})")
    return value


class _GraphCache:
    """PyG's ``cached=True``, tied to the graph the cached value was computed for.

    The value is reused while the layer sees the same graph: the same ``edge_index`` tensor (or
    structure) and ``edge_weight``, unmodified (their ``_version``), over the same nodes. A
    different tensor with equal contents is accepted (one comparison, then it is the new key).
    Anything else recomputes the value and warns: the answer is always the one for the graph
    given, never a mixture. While ``torch.compile`` traces, a filled cache is used without the
    comparison (edit graphs outside compiled code). ``reset_cache()`` on the layer drops it, and
    so does moving the layer with ``.to()``.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: tuple | None = None

    def clear(self) -> None:
        self.key = None
        self.value = None

    @staticmethod
    def _key(x: Tensor, edge_index: GraphLike, edge_weight: WeightLike, batch: Tensor | None) -> tuple:
        if isinstance(edge_index, (list, tuple)):
            raise ValueError(
                "cached=True needs one edge_index tensor or GraphStructure (for per-sample graphs pass the offset "
                "edge_index over the B * N nodes together with 'batch')"
            )
        ei = edge_index.edge_index if isinstance(edge_index, GraphStructure) else edge_index
        w = edge_weight if isinstance(edge_weight, Tensor) else None
        return (ei, _version_of(ei), w, None if w is None else _version_of(w), tuple(x.shape[:-1]), batch is None)

    @staticmethod
    def _same_graph(old: tuple, new: tuple) -> bool:
        if old[0] is new[0] and old[1] == new[1] and old[2] is new[2] and old[3] == new[3]:
            return old[4:] == new[4:]
        if (old[0] is new[0] and old[1] != new[1]) or (old[2] is not None and old[2] is new[2] and old[3] != new[3]):
            return False  # the cached graph's own tensors were edited in place
        if old[4:] != new[4:] or not isinstance(new[0], Tensor) or old[0].shape != new[0].shape:
            return False
        if (old[2] is None) != (new[2] is None):
            return False
        same = bool(torch.equal(old[0], new[0]))  # one comparison; the key is then the new tensor
        if same and old[2] is not None:
            same = old[2].shape == new[2].shape and bool(torch.equal(old[2], new[2]))
        return same

    def get(
        self,
        layer: str,
        x: Tensor,
        edge_index: GraphLike,
        edge_weight: WeightLike,
        batch: Tensor | None,
        build: Callable[[], tuple],
        stacklevel: int = 3,
    ) -> tuple:
        if is_compiling() and self.value is not None:
            return self.value
        key = self._key(x, edge_index, edge_weight, batch)
        if self.value is not None and self.key is not None:
            if self._same_graph(self.key, key):
                self.key = key
                return self.value
            warnings.warn(
                f"{layer}(cached=True) was called with a different or modified graph than the one its cache "
                "was built for: recomputing the cache for the new graph (call reset_cache() to drop it "
                "explicitly, or use cached=False for changing graphs)",
                UserWarning,
                stacklevel=stacklevel,
            )
        self.value = build()
        self.key = key if not is_compiling() else None
        return self.value


class _CachedGraphMixin:
    """``reset_cache()`` and cache dropping on ``.to()`` / ``.cuda()`` / ``.double()`` for cached layers."""

    _cache: _GraphCache

    def reset_cache(self) -> None:
        """Drop the cached graph preprocessing (``cached=True``); it is rebuilt on the next call."""
        self._cache.clear()

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        self._cache.clear()  # cached tensors are not buffers: drop them rather than keep a stale device
        return super()._apply(fn, *args, **kwargs)  # type: ignore[misc]

    def _cached_norm(
        self, x: Tensor, edge_index: GraphLike, edge_weight: WeightLike, batch: Tensor | None, norm: GCNNorm
    ) -> tuple[WeightLike, GCNNorm]:
        """With ``cached=True`` and ``norm.normalize``: the cached normalised weights and loop term.

        Returned as an already-normalised graph (``GCNNorm(False, False, self_loop_weight=loop)``);
        otherwise ``edge_weight`` and ``norm`` unchanged.
        """
        if not (getattr(self, "cached", False) and norm.normalize):
            return edge_weight, norm

        def build() -> tuple:
            _, g = resolve_graph(check_x(x), edge_index, edge_weight, batch)
            return _gcn_norm_of(g, norm.add_self_loops, norm.improved, x.dtype)

        w, loop = self._cache.get(type(self).__name__, x, edge_index, edge_weight, batch, build, stacklevel=4)
        return w, GCNNorm(normalize=False, add_self_loops=False, self_loop_weight=loop)


_CAPS_BASE = {
    "batched": True,
    "per_sample_graph": True,
    "edge_weight": True,
    "compile_safe": True,
    # On CUDA the torch backend's gcn_norm degree sum and the attention backward use index_add_
    # (atomics): float sums may differ in the last bits between runs.
    "deterministic": "CPU only",
}


class GCNConv(_CachedGraphMixin, nn.Module):
    r"""Graph convolution of Kipf & Welling, `"Semi-supervised Classification with Graph Convolutional
    Networks" <https://arxiv.org/abs/1609.02907>`_.

    .. math::
        \mathbf{X}' = \hat{D}^{-1/2} \hat{A} \hat{D}^{-1/2} \mathbf{X} \mathbf{\Theta}^\top + \mathbf{b}

    with :math:`\hat{A} = A + I` (``+ 2I`` when ``improved``) and :math:`\hat{D}` its weighted
    in-degree. Parameterised as PyG's ``GCNConv`` (``lin.weight``, ``bias``; Glorot and zeros).
    See :func:`graphvision.functional.gcn_conv`. The self-loop term is applied per node next to
    one SpMM (:func:`graphvision.ops.spmm`); a shared graph of a ``(B, N, F)`` batch is
    propagated once on ``(N, B * F)``.

    Args:
        in_channels: Input features per node :math:`F_{in}`.
        out_channels: Output features per node :math:`F_{out}`.
        improved: :math:`\hat{A} = A + 2I`.
        cached: Cache the normalisation after the first call (the graph must not change).
        add_self_loops: Add self-loops (default ``normalize``).
        normalize: Symmetric normalisation; without it, the edge weights are used as given.
        bias: Learn an additive bias.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(N, F_{in})`, or :math:`(B, N, F_{in})` with a shared or per-sample graph
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - edge_weight: :math:`(E,)`, optional
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> conv = graphvision.nn.GCNConv(16, 32)
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> conv(x, edge_index).shape
        torch.Size([4, 32])
        >>> conv(torch.randn(8, 4, 16), edge_index).shape  # 8 samples sharing one graph
        torch.Size([8, 4, 32])
    """

    _capabilities = {**_CAPS_BASE, "fused_kernel": "spmm"}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        improved: bool = False,
        cached: bool = False,
        add_self_loops: bool | None = None,
        normalize: bool = True,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.improved = _check_bool(improved, "improved")
        self.cached = _check_bool(cached, "cached")
        self.normalize = _check_bool(normalize, "normalize")
        self.add_self_loops = normalize if add_self_loops is None else _check_bool(add_self_loops, "add_self_loops")
        if self.add_self_loops and not self.normalize:
            raise ValueError(
                f"'{type(self).__name__}' does not support adding self-loops to the graph when no "
                "on-the-fly normalization is applied (pass add_self_loops=False or normalize=True)"
            )
        dd = {"device": device, "dtype": dtype}
        self.lin = nn.Linear(in_channels, out_channels, bias=False, **dd)
        self.bias = nn.Parameter(torch.empty(out_channels, **dd)) if bias else None
        self._cache = _GraphCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weights, zero bias, empty cache."""
        glorot_(self.lin.weight)
        zeros_(self.bias)
        self._cache.clear()

    def forward(
        self,
        x: Tensor,
        edge_index: GraphLike,
        edge_weight: WeightLike = None,
        *,
        batch: Tensor | None = None,
    ) -> Tensor:
        """Convolve ``x`` over the graph.

        Args:
            x: ``(N, F_in)`` or ``(B, N, F_in)``.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_weight: Optional ``(E,)`` (a list for a list of graphs).
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.

        Returns:
            ``(N, F_out)`` or ``(B, N, F_out)``.
        """
        norm = GCNNorm(self.normalize, self.add_self_loops, self.improved)
        w, norm = self._cached_norm(x, edge_index, edge_weight, batch, norm)
        return gcn_conv(x, edge_index, self.lin.weight, self.bias, w, batch=batch, norm=norm)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}"
        if self.improved:
            s += ", improved=True"
        if self.cached:
            s += ", cached=True"
        if not self.normalize:
            s += ", normalize=False"
        if self.bias is None:
            s += ", bias=False"
        return s

    def __repr__(self) -> str:  # compact, as PyG: the internal projections are not listed
        return f"{type(self).__name__}({self.extra_repr()})"


class _AttentionBase(nn.Module):
    """Shared parameters of :class:`GATConv` and :class:`AttentionGCNConv` (PyG ``GATConv`` names)."""

    def _init_attention(
        self,
        in_channels: int,
        out_channels: int,
        heads: int,
        concat: bool,
        negative_slope: float,
        dropout: float,
        bias: bool,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
        lazy: bool = False,
    ) -> dict:
        self.in_channels = -1 if lazy and in_channels == -1 else check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.heads = check_positive_int(heads, "heads")
        self.concat = _check_bool(concat, "concat")
        if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool) or negative_slope < 0:
            raise ValueError(f"Expected 'negative_slope' >= 0 (got {negative_slope!r})")
        self.negative_slope = float(negative_slope)
        self.dropout = _check_unit(dropout, "dropout", closed=False)
        dd = {"device": device, "dtype": dtype}
        if self.in_channels == -1:  # lazy: sized by the first input (PyG's in_channels=-1)
            self.lin = nn.LazyLinear(heads * out_channels, bias=False, **dd)
        else:
            self.lin = nn.Linear(in_channels, heads * out_channels, bias=False, **dd)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels, **dd))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels, **dd))
        self.out_dim = heads * out_channels if concat else out_channels
        self.bias = nn.Parameter(torch.empty(self.out_dim, **dd)) if bias else None
        return dd

    def _reset_attention(self) -> None:
        if not _is_lazy(self.lin):
            glorot_(self.lin.weight)
        glorot_(self.att_src)
        glorot_(self.att_dst)
        zeros_(self.bias)

    def _weights(self, **optional: Tensor | None) -> AttentionWeights:
        """The parameters as the functional twin takes them (``optional``: the edge / skip projections)."""
        return AttentionWeights(self.lin.weight, self.att_src, self.att_dst, self.bias, **optional)

    def _repr_attention(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, heads={self.heads}"
        if not self.concat:
            s += ", concat=False"
        if self.negative_slope != 0.2:
            s += f", negative_slope={self.negative_slope}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def __repr__(self) -> str:  # compact, as PyG: the internal projections are not listed
        return f"{type(self).__name__}({self.extra_repr()})"


class GATConv(_AttentionBase):
    r"""Graph attention of Veličković et al., `"Graph Attention Networks"
    <https://arxiv.org/abs/1710.10903>`_, on the fused :func:`graphvision.ops.attention_aggregate`.

    .. math::
        \mathbf{x}'_i = \Big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha^{k}_{ij}\, w_{ji}\, \mathbf{\Theta}^{k} \mathbf{x}_j, \qquad
        \alpha^{k}_{ij} = \operatorname{softmax}_j\Big(\operatorname{LeakyReLU}\big(
        \mathbf{a}^{k\top}_{s} \mathbf{\Theta}^{k}\mathbf{x}_j + \mathbf{a}^{k\top}_{t}
        \mathbf{\Theta}^{k}\mathbf{x}_i\big)\Big)

    Parameterised as PyG's ``GATConv`` (``lin.weight``, ``att_src``, ``att_dst``, ``bias``,
    optional ``res.weight``). Optional edge weights :math:`w_{ji}` multiply the attention
    (:math:`w = 1` without them). A shared graph of a ``(B, N, F)`` batch runs as one call with
    ``B * K`` heads. Self-loops are appended without removing existing ones (static shapes);
    see :func:`graphvision.functional.gat_conv`.

    Args:
        in_channels: Input features per node :math:`F_{in}`, or ``-1`` to size ``lin`` from the
            first input (lazy, as PyG).
        out_channels: Output features per head :math:`F_{out}`.
        heads: Number of attention heads :math:`K`.
        concat: Concatenate the heads (else average).
        negative_slope: LeakyReLU slope.
        dropout: Dropout on the attention coefficients in training.
        add_self_loops: Remove existing self-loops and add one per node (PyG's semantics).
        edge_dim: Edge feature size :math:`D`; enables ``edge_attr`` in the scores (PyG
            ``lin_edge``, ``att_edge``).
        fill_value: ``edge_weight`` / ``edge_attr`` of the added loops: a float, a tensor, or
            ``"add"``, ``"mean"``, ``"max"``, ``"min"`` of the node's incoming values (PyG's default
            ``"mean"``).
        bias: Learn an additive bias.
        residual: Add a linear skip connection ``res(x)``.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(N, F_{in})`, or :math:`(B, N, F_{in})` with a shared or per-sample graph
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - edge_weight: :math:`(E,)`, optional
        - output: :math:`(N, K F_{out})` (concat) or :math:`(N, F_{out})`; batched :math:`(B, N, \cdot)`
        - attention (``return_attention_weights``): :math:`(E + N, K)`, shared graph :math:`(B, E + N, K)`

    Example:
        >>> conv = graphvision.nn.GATConv(16, 8, heads=4)
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> out, (ei, attn) = conv(x, edge_index, return_attention_weights=True)
        >>> out.shape, attn.shape
        (torch.Size([4, 32]), torch.Size([7, 4]))
    """

    _capabilities = {**_CAPS_BASE, "fused_kernel": "attention_aggregate"}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        edge_dim: int | None = None,
        fill_value: float | Tensor | str = "mean",
        bias: bool = True,
        residual: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = self._init_attention(
            in_channels, out_channels, heads, concat, negative_slope, dropout, bias, device, dtype, lazy=True
        )
        self.add_self_loops = _check_bool(add_self_loops, "add_self_loops")
        if isinstance(fill_value, str):
            check_choice(fill_value, FILL_REDUCES, "fill_value")
        elif not isinstance(fill_value, Tensor):
            fill_value = float(fill_value)
        self.fill_value = fill_value
        self.edge_dim = None if edge_dim is None else check_positive_int(edge_dim, "edge_dim")
        if self.edge_dim is not None:
            self.lin_edge: nn.Linear | None = nn.Linear(self.edge_dim, heads * out_channels, bias=False, **dd)
            self.att_edge: nn.Parameter | None = nn.Parameter(torch.empty(1, heads, out_channels, **dd))
        else:
            self.lin_edge = None
            self.register_parameter("att_edge", None)
        self.residual = _check_bool(residual, "residual")
        if residual:
            self.res: nn.Module | None = (
                nn.LazyLinear(self.out_dim, bias=False, **dd)
                if self.in_channels == -1
                else nn.Linear(in_channels, self.out_dim, bias=False, **dd)
            )
        else:
            self.res = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weights and attention vectors, zero bias."""
        self._reset_attention()
        if self.res is not None and not _is_lazy(self.res):
            glorot_(self.res.weight)
        if self.lin_edge is not None:
            glorot_(self.lin_edge.weight)
            glorot_(self.att_edge)

    def forward(
        self,
        x: Tensor,
        edge_index: GraphLike,
        edge_weight: WeightLike = None,
        *,
        edge_attr: Tensor | None = None,
        batch: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend over each node's neighbours.

        Args:
            x: ``(N, F_in)`` or ``(B, N, F_in)``.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_weight: Optional ``(E,)`` multiplying the attention. With ``edge_dim`` set, the
                third positional argument is read as ``edge_attr`` instead, as in PyG's
                ``conv(x, edge_index, edge_attr)``.
            edge_attr: Optional ``(E, edge_dim)`` edge features entering the attention scores.
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.
            return_attention_weights: Also return ``(edge_index, attention)`` including the self-loops.

        Returns:
            The output, and with ``return_attention_weights`` ``(edge_index, attention)``.
        """
        if self.lin_edge is not None and edge_attr is None:
            edge_attr, edge_weight = edge_weight, None  # type: ignore[assignment]
        if edge_attr is not None and self.lin_edge is None:
            raise ValueError("'edge_attr' was given to a GATConv without 'edge_dim'; set edge_dim=D")
        for lin in (self.lin, self.res):
            if lin is not None and _is_lazy(lin):
                lin(x.new_zeros(0, x.size(-1)))
                glorot_(lin.weight)
        weights = self._weights(
            residual_weight=None if self.res is None else self.res.weight,
            weight_edge=None if self.lin_edge is None else self.lin_edge.weight,
            att_edge=self.att_edge,
        )
        options = GATOptions(self.concat, self.negative_slope, self.dropout, self.add_self_loops, self.fill_value)
        return gat_conv(
            x, edge_index, weights, edge_weight, edge_attr=edge_attr, batch=batch, options=options,
            training=self.training, return_attention_weights=return_attention_weights,
        )

    def extra_repr(self) -> str:
        s = self._repr_attention()
        if not self.add_self_loops:
            s += ", add_self_loops=False"
        if self.edge_dim is not None:
            s += f", edge_dim={self.edge_dim}"
        if self.residual:
            s += ", residual=True"
        return s


class AttentionGCNConv(_CachedGraphMixin, _AttentionBase):
    r"""Attention-weighted graph convolution: multi-head GAT-style attention multiplying the
    (GCN-normalised) structural or mutual-information edge weight, with a GCNII-style initial
    residual against over-smoothing. The convolution that RMCG (relation-aware multi-channel
    attention GCN) stacks.

    .. math::
        \mathbf{x}'^{k}_i = (1 - \beta) \sum_{j \in \mathcal{N}(i) \cup \{i\}} \alpha^{k}_{ij}\,
        \tilde{a}_{ij}\, \mathbf{\Theta}^{k}\mathbf{x}_j + \beta\, \mathbf{\Theta}^{k}\mathbf{x}^{(0)}_i,
        \qquad \alpha^{k}_{ij} = \operatorname{softmax}_j \operatorname{LeakyReLU}\big(
        \mathbf{a}^{k\top}_{s}\mathbf{\Theta}^{k}\mathbf{x}_j + \mathbf{a}^{k\top}_{t}\mathbf{\Theta}^{k}\mathbf{x}_i\big)

    :math:`\tilde{a}_{ij}` is the edge weight after :math:`\hat{D}^{-1/2}\hat{A}\hat{D}^{-1/2}`
    (``normalize=True``); :math:`\beta` = ``alpha`` applies when ``x0`` is passed (GCNII,
    `Chen et al. <https://arxiv.org/abs/2007.02133>`_). Heads are concatenated or averaged, then
    the bias is added. One fused :func:`graphvision.ops.attention_aggregate` call per forward
    (``B * K`` heads for a shared graph). See :func:`graphvision.functional.attention_gcn_conv`.
    Graphs that already carry self-loops (e.g. a mutual-information adjacency built with
    self-loops) should use ``add_self_loops=False``.

    Args:
        in_channels: Input features per node :math:`F_{in}`.
        out_channels: Output features per head :math:`F_{out}`.
        heads: Number of attention heads :math:`K`.
        concat: Concatenate the heads (else average).
        alpha: Initial-residual strength :math:`\beta \in [0, 1]` (used when ``x0`` is passed).
        negative_slope: LeakyReLU slope of the attention scores.
        dropout: Dropout on the attention coefficients in training.
        normalize: GCN-normalise the edge weights.
        add_self_loops: Append self-loops.
        improved: Self-loops of weight 2 in the normalisation.
        cached: Cache the self-looped, normalised graph after the first call (graph must not change).
        bias: Learn an additive bias.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x, x0: :math:`(N, F_{in})`, or :math:`(B, N, F_{in})` with a shared or per-sample graph
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - edge_weight: :math:`(E,)`, optional (structural or mutual-information weights)
        - output: :math:`(N, K F_{out})` (concat) or :math:`(N, F_{out})`; batched :math:`(B, N, \cdot)`
        - attention (``return_attention_weights``): :math:`(E + N, K)`, shared graph :math:`(B, E + N, K)`

    Example:
        >>> conv = graphvision.nn.AttentionGCNConv(16, 8, heads=4, alpha=0.1)
        >>> x = torch.randn(2, 4, 16)  # two samples sharing one 4-node graph
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> out, (ei, attn) = conv(x, edge_index, x0=x, return_attention_weights=True)
        >>> out.shape, attn.shape
        (torch.Size([2, 4, 32]), torch.Size([2, 7, 4]))
    """

    _capabilities = {**_CAPS_BASE, "fused_kernel": "attention_aggregate"}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        alpha: float = 0.0,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        normalize: bool = True,
        add_self_loops: bool = True,
        improved: bool = False,
        cached: bool = False,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self._init_attention(in_channels, out_channels, heads, concat, negative_slope, dropout, bias, device, dtype)
        self.alpha = _check_unit(alpha, "alpha", closed=True)
        self.normalize = _check_bool(normalize, "normalize")
        self.add_self_loops = _check_bool(add_self_loops, "add_self_loops")
        self.improved = _check_bool(improved, "improved")
        if improved and not (normalize or add_self_loops):
            raise ValueError("'improved=True' changes the self-loop weight; it needs add_self_loops=True")
        self.cached = _check_bool(cached, "cached")
        self._cache = _GraphCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weights and attention vectors, zero bias, empty cache."""
        self._reset_attention()
        self._cache.clear()

    def forward(
        self,
        x: Tensor,
        edge_index: GraphLike,
        edge_weight: WeightLike = None,
        *,
        x0: Tensor | None = None,
        batch: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attention-weighted convolution.

        Args:
            x: ``(N, F_in)`` or ``(B, N, F_in)``.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_weight: Optional ``(E,)`` structural / MI weights.
            x0: Initial features for the initial residual (same shape as ``x``).
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.
            return_attention_weights: Also return ``(edge_index, attention)`` including the self-loops.

        Returns:
            The output, and with ``return_attention_weights`` ``(edge_index, attention)``.
        """
        normalize, add_loops = self.normalize, self.add_self_loops
        if self.cached and (normalize or add_loops):
            build = lambda: self._preprocess(x, edge_index, edge_weight, batch)  # noqa: E731
            edge_index, edge_weight = self._cache.get(type(self).__name__, x, edge_index, edge_weight, batch, build)
            normalize = add_loops = False
        options = AttentionGCNOptions(
            self.concat, self.alpha, self.negative_slope, self.dropout, normalize, add_loops, self.improved
        )
        return attention_gcn_conv(
            x, edge_index, self._weights(), edge_weight, x0=x0, batch=batch, options=options,
            training=self.training, return_attention_weights=return_attention_weights,
        )

    def _preprocess(self, x: Tensor, edge_index: GraphLike, edge_weight: WeightLike, batch: Tensor | None) -> tuple:
        """The self-looped (and normalised) graph and its weights, as the functional twin builds them."""
        _, g = resolve_graph(check_x(x), edge_index, edge_weight, batch)
        g2 = prepare_attention_graph(g, self.normalize, self.add_self_loops, self.improved, 1.0, x.dtype)
        return g2.graph, g2.edge_weight

    def extra_repr(self) -> str:
        s = self._repr_attention()
        if self.alpha:
            s += f", alpha={self.alpha}"
        if not self.normalize:
            s += ", normalize=False"
        if not self.add_self_loops:
            s += ", add_self_loops=False"
        if self.improved:
            s += ", improved=True"
        if self.cached:
            s += ", cached=True"
        return s


class GCN2Conv(_CachedGraphMixin, nn.Module):
    r"""GCNII convolution of Chen et al., `"Simple and Deep Graph Convolutional Networks"
    <https://arxiv.org/abs/2007.02133>`_: initial residual and identity mapping.

    .. math::
        \mathbf{X}' = \Big((1 - \alpha) \hat{\mathbf{P}} \mathbf{X} + \alpha \mathbf{X}^{(0)}\Big)
        \Big((1 - \beta) \mathbf{I} + \beta \mathbf{\Theta}\Big), \qquad
        \beta = \log\Big(\frac{\theta}{\ell} + 1\Big)

    with :math:`\hat{\mathbf{P}} = \hat{D}^{-1/2}\hat{A}\hat{D}^{-1/2}` (:math:`\beta = 1` when
    ``theta``/``layer`` are not given). Parameterised as PyG's ``GCN2Conv`` (``weight1``,
    ``weight2`` when ``shared_weights=False``). See :func:`graphvision.functional.gcn2_conv`.

    Args:
        channels: Features per node :math:`F` (input and output).
        alpha: Initial-residual strength :math:`\alpha`.
        theta: :math:`\theta` of the identity-mapping strength (with ``layer``).
        layer: Layer index :math:`\ell \geq 1` (with ``theta``).
        shared_weights: One weight for both terms (else ``weight2`` for the initial residual).
        cached: Cache the normalisation after the first call (graph must not change).
        add_self_loops: Add self-loops.
        normalize: Symmetric normalisation.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x, x0: :math:`(N, F)`, or :math:`(B, N, F)` with a shared or per-sample graph
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - output: same as ``x``

    Example:
        >>> conv = graphvision.nn.GCN2Conv(16, alpha=0.1, theta=0.5, layer=2)
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> conv(x, x, edge_index).shape
        torch.Size([4, 16])
    """

    _capabilities = {**_CAPS_BASE, "fused_kernel": "spmm"}

    def __init__(
        self,
        channels: int,
        alpha: float,
        theta: float | None = None,
        layer: int | None = None,
        shared_weights: bool = True,
        cached: bool = False,
        add_self_loops: bool = True,
        normalize: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        self.alpha = _check_unit(alpha, "alpha", closed=True)
        if (theta is None) != (layer is None):
            raise ValueError(f"Pass both 'theta' and 'layer' or neither (got theta={theta!r}, layer={layer!r})")
        self.theta, self.layer = theta, layer
        self.beta = 1.0
        if theta is not None and layer is not None:
            check_positive_int(layer, "layer")
            if not isinstance(theta, (int, float)) or theta <= 0:
                raise ValueError(f"Expected 'theta' > 0 (got {theta!r})")
            self.beta = math.log(theta / layer + 1)
        self.shared_weights = _check_bool(shared_weights, "shared_weights")
        self.cached = _check_bool(cached, "cached")
        self.add_self_loops = _check_bool(add_self_loops, "add_self_loops")
        self.normalize = _check_bool(normalize, "normalize")
        dd = {"device": device, "dtype": dtype}
        self.weight1 = nn.Parameter(torch.empty(channels, channels, **dd))
        self.weight2 = None if shared_weights else nn.Parameter(torch.empty(channels, channels, **dd))
        self._cache = _GraphCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weights, empty cache."""
        glorot_(self.weight1)
        glorot_(self.weight2)
        self._cache.clear()

    def forward(
        self,
        x: Tensor,
        x0: Tensor,
        edge_index: GraphLike,
        edge_weight: WeightLike = None,
        *,
        batch: Tensor | None = None,
    ) -> Tensor:
        """GCNII step.

        Args:
            x: ``(N, F)`` or ``(B, N, F)``.
            x0: Initial features, same shape as ``x``.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_weight: Optional ``(E,)``.
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.

        Returns:
            Same shape as ``x``.
        """
        w, norm = self._cached_norm(x, edge_index, edge_weight, batch, GCNNorm(self.normalize, self.add_self_loops))
        return gcn2_conv(
            x, x0, edge_index, self.weight1, self.weight2, w, batch=batch, alpha=self.alpha, beta=self.beta, norm=norm
        )

    def extra_repr(self) -> str:
        s = f"{self.channels}, alpha={self.alpha}, beta={self.beta}"
        if not self.shared_weights:
            s += ", shared_weights=False"
        if self.cached:
            s += ", cached=True"
        if not self.normalize:
            s += ", normalize=False"
        return s


class EdgeConditionedConv(nn.Module):
    r"""Edge-conditioned convolution (ECC) of Simonovsky & Komodakis, `"Dynamic Edge-Conditioned
    Filters in Convolutional Neural Networks on Graphs" <https://arxiv.org/abs/1704.02901>`_
    (PyG's ``NNConv``, Gilmer et al.'s edge network).

    .. math::
        \mathbf{x}'_i = \mathbf{\Theta}_r \mathbf{x}_i + \mathop{\mathrm{aggr}}_{j \in \mathcal{N}(i)}
        \mathbf{x}_j^\top h_{\mathbf{\Theta}}(\mathbf{e}_{ji}) + \mathbf{b}

    where the edge network :math:`h_{\mathbf{\Theta}}` (``nn``) maps each edge attribute to an
    :math:`F_{in} \times F_{out}` matrix. Parameterised as PyG's ``NNConv`` (``nn``,
    ``lin.weight`` for the root weight, ``bias``). With a shared graph the matrices are computed
    once and shared by the ``B`` samples. See :func:`graphvision.functional.edge_conditioned_conv`.

    Args:
        in_channels: Input features per node :math:`F_{in}`.
        out_channels: Output features per node :math:`F_{out}`.
        nn: Edge network mapping ``(E, D)`` edge attributes to ``(E, F_in * F_out)``.
        aggr: ``"sum"`` (alias ``"add"``), ``"mean"`` or ``"max"``.
        root_weight: Add the transformed root node features :math:`\mathbf{\Theta}_r\mathbf{x}_i`.
        bias: Learn an additive bias.
        device: Parameter device (also moves ``nn``).
        dtype: Parameter dtype (also casts ``nn``).

    Shape:
        - x: :math:`(N, F_{in})`, or :math:`(B, N, F_{in})` with a shared or per-sample graph
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - edge_attr: :math:`(E, D)` (a list of them for a list of graphs)
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> edge_nn = torch.nn.Sequential(torch.nn.Linear(3, 16 * 8))
        >>> conv = graphvision.nn.EdgeConditionedConv(16, 8, edge_nn, aggr="mean")
        >>> x, edge_attr = torch.randn(4, 16), torch.randn(3, 3)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> conv(x, edge_index, edge_attr).shape
        torch.Size([4, 8])
    """

    _capabilities = {**_CAPS_BASE, "edge_weight": "edge_attr", "fused_kernel": False}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        nn: Callable[[Tensor], Tensor],
        aggr: str = "sum",
        root_weight: bool = True,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        if not callable(nn):
            raise TypeError(f"Expected 'nn' to be a callable edge network (got {type(nn).__name__})")
        aggr = "sum" if aggr == "add" else aggr
        check_choice(aggr, AGGREGATIONS, "aggr")
        self.aggr = aggr
        self.root_weight = _check_bool(root_weight, "root_weight")
        self.nn = nn.to(device=device, dtype=dtype) if isinstance(nn, torch.nn.Module) else nn
        dd = {"device": device, "dtype": dtype}
        self.lin = torch.nn.Linear(in_channels, out_channels, bias=False, **dd) if root_weight else None
        self.bias = torch.nn.Parameter(torch.empty(out_channels, **dd)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the edge network (its own ``reset_parameters``), the root weight and the bias."""
        if isinstance(self.nn, torch.nn.Module):
            for m in self.nn.modules():
                if m is not self and hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        if self.lin is not None:
            bound = 1.0 / math.sqrt(self.in_channels)
            with torch.no_grad():
                self.lin.weight.uniform_(-bound, bound)
        zeros_(self.bias)

    def forward(
        self,
        x: Tensor,
        edge_index: GraphLike,
        edge_attr: Tensor | list[Tensor] | tuple[Tensor, ...],
        *,
        batch: Tensor | None = None,
    ) -> Tensor:
        """Edge-conditioned convolution.

        Args:
            x: ``(N, F_in)`` or ``(B, N, F_in)``.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_attr: ``(E, D)`` edge attributes (or ``(E,)``; a list for a list of graphs).
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.

        Returns:
            ``(N, F_out)`` or ``(B, N, F_out)``.
        """
        if isinstance(edge_attr, (list, tuple)):
            edge_attr = torch.cat(list(edge_attr), 0)
        if not isinstance(edge_attr, Tensor):
            raise TypeError(f"Expected 'edge_attr' to be a tensor of shape (E, D) (got {type(edge_attr).__name__})")
        if edge_attr.dim() == 1:
            edge_attr = edge_attr.unsqueeze(-1)
        w = self.nn(edge_attr)
        e = w.size(0)
        if w.dim() != 2 or w.size(1) != self.in_channels * self.out_channels:
            raise ValueError(
                f"Expected the edge network to return (E, in_channels * out_channels) = "
                f"(E, {self.in_channels * self.out_channels}) (got {tuple(w.shape)})"
            )
        return edge_conditioned_conv(
            x,
            edge_index,
            w.view(e, self.in_channels, self.out_channels),
            None if self.lin is None else self.lin.weight,
            self.bias,
            batch=batch,
            aggr=self.aggr,
        )

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, aggr={self.aggr!r}"
        if not self.root_weight:
            s += ", root_weight=False"
        if self.bias is None:
            s += ", bias=False"
        return s
