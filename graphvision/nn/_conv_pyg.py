r"""PyG-twin convolution modules: GATv2, GraphSAGE, GraphConv, GIN and GINE.

Constructor arguments, defaults, parameter names and outputs follow PyTorch Geometric 2.8
(``GATv2Conv``: ``lin_l``, ``lin_r``, ``att``, ``lin_edge``, ``res``, ``bias``; ``SAGEConv``:
``lin_l``, ``lin_r``, ``lin``; ``GraphConv``: ``lin_rel``, ``lin_root``; ``GINConv`` /
``GINEConv``: ``nn``, ``eps``, ``lin``), so a PyG state dict loads with ``strict=True``. The
math lives in :mod:`graphvision.functional` (``gatv2_conv``, ``sage_conv``, ``graph_conv``,
``gin_conv``, ``gine_conv``) and runs on :mod:`graphvision.ops` (SpMM on the structure's cached
CSR, segment softmax), not on per-edge messages where the layer does not need them.

``in_channels=-1`` (or ``-1`` in a ``(src, dst)`` pair) creates the projections lazily: their
input size is read from the first input, as PyG's lazy ``Linear``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from graphvision._checks import check_choice
from graphvision.functional._conv import GATOptions
from graphvision.functional._conv_pyg import (
    FILL_REDUCES,
    GATv2Weights,
    gatv2_conv,
    gin_conv,
    gine_conv,
    graph_conv,
    sage_conv,
)
from graphvision.functional._conv_pyg import PairLike
from graphvision.functional._graph_input import GraphLike
from graphvision.nn._conv import _check_bool, _check_unit, glorot_, zeros_

__all__ = ["GATv2Conv", "SAGEConv", "GraphConv", "GINConv", "GINEConv"]

_CAPS = {
    "batched": True,
    "per_sample_graph": True,
    "edge_weight": False,
    "compile_safe": True,
    "deterministic": True,
}


def _in_pair(in_channels: int | tuple[int, int], name: str = "in_channels") -> tuple[int, int]:
    """``(F_src, F_dst)``; ``-1`` marks a lazily sized input."""
    pair = (in_channels, in_channels) if isinstance(in_channels, int) else tuple(in_channels)
    if len(pair) != 2 or any(isinstance(c, bool) or not isinstance(c, int) or (c < 1 and c != -1) for c in pair):
        raise ValueError(f"Expected '{name}' to be a positive int, -1 (lazy) or a pair of them (got {in_channels!r})")
    return pair  # type: ignore[return-value]


def _linear(in_features: int, out_features: int, bias: bool, dd: dict) -> nn.Linear:
    """``nn.Linear``, or ``nn.LazyLinear`` for ``in_features == -1`` (same state-dict keys)."""
    if in_features == -1:
        return nn.LazyLinear(out_features, bias=bias, **dd)
    return nn.Linear(in_features, out_features, bias=bias, **dd)


def _is_lazy(lin: nn.Module) -> bool:
    return isinstance(lin, nn.modules.lazy.LazyModuleMixin) and lin.has_uninitialized_params()


def _materialize(lin: nn.Module, x: Tensor, glorot: bool = False) -> None:
    """Size a lazy projection from ``x``'s last dimension (its first call; a no-op afterwards)."""
    if _is_lazy(lin):
        lin(x.new_zeros(0, x.size(-1)))
        if glorot:
            glorot_(lin.weight)


def _reset_linear(lin: nn.Module | None, glorot: bool = False) -> None:
    if lin is None or _is_lazy(lin):
        return
    if glorot:
        glorot_(lin.weight)
        zeros_(lin.bias)
    else:
        lin.reset_parameters()


def _src_dst(x: PairLike) -> tuple[Tensor, Tensor]:
    if isinstance(x, (tuple, list)):
        return x[0], x[1]
    return x, x


# --------------------------------------------------------------------------------------------
# GATv2
# --------------------------------------------------------------------------------------------


class GATv2Conv(nn.Module):
    r"""GATv2 attention of Brody et al., `"How Attentive are Graph Attention Networks?"
    <https://arxiv.org/abs/2105.14491>`_; PyG's ``GATv2Conv``.

    .. math::
        \mathbf{x}'_i = \Big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i) \cup \{i\}}
        \alpha^{k}_{ij}\, \mathbf{\Theta}^{k}_{s} \mathbf{x}_j, \qquad
        \alpha^{k}_{ij} = \operatorname{softmax}_j\Big(\mathbf{a}^{k\top}\operatorname{LeakyReLU}\big(
        \mathbf{\Theta}^{k}_{s}\mathbf{x}_j + \mathbf{\Theta}^{k}_{t}\mathbf{x}_i +
        \mathbf{\Theta}^{k}_{e}\mathbf{e}_{ji}\big)\Big)

    See :func:`graphvision.functional.gatv2_conv`. Parameterised as PyG (``lin_l``, ``lin_r``
    — the same module with ``share_weights`` —, ``att``, optional ``lin_edge``, ``res``, ``bias``).

    Args:
        in_channels: Input features per node, ``-1`` for lazy, or a ``(F_src, F_dst)`` pair.
        out_channels: Output features per head :math:`F_{out}`.
        heads: Number of attention heads :math:`K`.
        concat: Concatenate the heads (else average).
        negative_slope: LeakyReLU slope.
        dropout: Dropout on the attention coefficients in training.
        add_self_loops: Remove existing self-loops and add one per node (PyG's semantics).
        edge_dim: Edge feature size :math:`D`; enables ``edge_attr``.
        fill_value: Edge features of the added loops: a float, a tensor, or ``"add"``,
            ``"mean"``, ``"max"``, ``"min"`` of the node's incoming edge features.
        bias: Learn an additive output bias (and biases of ``lin_l``/``lin_r``, as PyG).
        share_weights: Use one projection for sources and targets.
        residual: Add a linear skip connection ``res(x_dst)``.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(N, F_{in})`, :math:`(B, N, F_{in})` (shared or per-sample graph) or
          :math:`((N_s, F_s), (N_t, F_t))`
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - edge_attr: :math:`(E, D)`, optional
        - output: :math:`(N, K F_{out})` (concat) or :math:`(N, F_{out})`; batched :math:`(B, N, \cdot)`

    Example:
        >>> conv = graphvision.nn.GATv2Conv(16, 8, heads=4, edge_dim=3)
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> conv(x, edge_index, torch.randn(3, 3)).shape
        torch.Size([4, 32])
    """

    _capabilities = {**_CAPS, "fused_kernel": "segment_softmax"}

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        edge_dim: int | None = None,
        fill_value: float | Tensor | str = "mean",
        bias: bool = True,
        share_weights: bool = False,
        residual: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        f_src, f_dst = _in_pair(in_channels)
        self.in_channels = in_channels
        self.out_channels = _pos(out_channels, "out_channels")
        self.heads = _pos(heads, "heads")
        self.concat = _check_bool(concat, "concat")
        if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool) or negative_slope < 0:
            raise ValueError(f"Expected 'negative_slope' >= 0 (got {negative_slope!r})")
        self.negative_slope = float(negative_slope)
        self.dropout = _check_unit(dropout, "dropout", closed=False)
        self.add_self_loops = _check_bool(add_self_loops, "add_self_loops")
        self.edge_dim = None if edge_dim is None else _pos(edge_dim, "edge_dim")
        if isinstance(fill_value, str):
            check_choice(fill_value, FILL_REDUCES, "fill_value")
        self.fill_value = fill_value
        self.share_weights = _check_bool(share_weights, "share_weights")
        self.residual = _check_bool(residual, "residual")
        if share_weights and f_src != f_dst:
            raise ValueError(f"share_weights=True needs equal source and target sizes (got in_channels={in_channels!r})")
        dd = {"device": device, "dtype": dtype}
        hc = heads * out_channels
        self.lin_l = _linear(f_src, hc, bias, dd)
        self.lin_r = self.lin_l if share_weights else _linear(f_dst, hc, bias, dd)
        self.att = nn.Parameter(torch.empty(1, heads, out_channels, **dd))
        self.lin_edge = _linear(self.edge_dim, hc, False, dd) if self.edge_dim is not None else None
        self.out_dim = hc if concat else out_channels
        self.res = _linear(f_dst, self.out_dim, False, dd) if residual else None
        self.bias = nn.Parameter(torch.empty(self.out_dim, **dd)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weights and attention vector, zero biases (as PyG)."""
        for lin in (self.lin_l, self.lin_r, self.lin_edge, self.res):
            _reset_linear(lin, glorot=True)
        glorot_(self.att)
        zeros_(self.bias)

    def forward(
        self,
        x: PairLike,
        edge_index: GraphLike,
        edge_attr: Tensor | None = None,
        *,
        batch: Tensor | None = None,
        return_attention_weights: bool | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend over each node's neighbours.

        Args:
            x: ``(N, F_in)``, ``(B, N, F_in)`` or a bipartite ``(x_src, x_dst)`` pair.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_attr: Optional ``(E, D)`` edge features (needs ``edge_dim``).
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.
            return_attention_weights: Also return ``(edge_index, attention)`` (with the loops), as PyG.

        Returns:
            The output, and with ``return_attention_weights`` ``(edge_index, attention)``.
        """
        if edge_attr is not None and self.lin_edge is None:
            raise ValueError("'edge_attr' was given to a GATv2Conv without 'edge_dim'; set edge_dim=D")
        x_src, x_dst = _src_dst(x)
        _materialize(self.lin_l, x_src, glorot=True)
        _materialize(self.lin_r, x_dst, glorot=True)
        if self.res is not None:
            _materialize(self.res, x_dst, glorot=True)
        weights = GATv2Weights(
            self.lin_l.weight,
            self.lin_r.weight,
            self.att,
            self.bias,
            bias_src=self.lin_l.bias,
            bias_dst=self.lin_r.bias,
            weight_edge=None if self.lin_edge is None else self.lin_edge.weight,
            residual_weight=None if self.res is None else self.res.weight,
        )
        options = GATOptions(self.concat, self.negative_slope, self.dropout, self.add_self_loops, self.fill_value)
        return gatv2_conv(
            x, edge_index, weights, edge_attr, batch=batch, options=options, training=self.training,
            return_attention_weights=bool(return_attention_weights is not None),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"


def _pos(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Expected '{name}' to be a positive int (got {value!r})")
    return value


# --------------------------------------------------------------------------------------------
# SAGE, GraphConv
# --------------------------------------------------------------------------------------------


class SAGEConv(nn.Module):
    r"""GraphSAGE convolution of Hamilton et al., `"Inductive Representation Learning on Large
    Graphs" <https://arxiv.org/abs/1706.02216>`_; PyG's ``SAGEConv``.

    .. math::
        \mathbf{x}'_i = \mathbf{W}_1 \mathbf{x}_i + \mathbf{W}_2 \cdot
        \mathrm{aggr}_{j \in \mathcal{N}(i)} \mathbf{x}_j

    See :func:`graphvision.functional.sage_conv`. Parameterised as PyG (``lin_l`` with the bias,
    ``lin_r`` without, ``lin`` with ``project``).

    Args:
        in_channels: Input features per node, ``-1`` for lazy, or a ``(F_src, F_dst)`` pair.
        out_channels: Output features :math:`F_{out}`.
        aggr: ``"mean"``, ``"sum"`` (alias ``"add"``) or ``"max"``.
        normalize: L2-normalise the output rows.
        root_weight: Add the transformed target features :math:`\mathbf{W}_1 \mathbf{x}_i`.
        project: Apply a linear layer with ReLU to the source features first.
        bias: Learn an additive bias.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(N, F_{in})`, :math:`(B, N, F_{in})` (shared or per-sample graph) or
          :math:`((N_s, F_s), (N_t, F_t))`
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> conv = graphvision.nn.SAGEConv(16, 32, aggr="max")
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> conv(x, edge_index).shape
        torch.Size([4, 32])
    """

    _capabilities = {**_CAPS, "fused_kernel": "spmm"}

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        aggr: str = "mean",
        normalize: bool = False,
        root_weight: bool = True,
        project: bool = False,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        f_src, f_dst = _in_pair(in_channels)
        check_choice(aggr, ("mean", "sum", "add", "max"), "aggr")
        self.in_channels = in_channels
        self.out_channels = _pos(out_channels, "out_channels")
        self.aggr = aggr
        self.normalize = _check_bool(normalize, "normalize")
        self.root_weight = _check_bool(root_weight, "root_weight")
        self.project = _check_bool(project, "project")
        dd = {"device": device, "dtype": dtype}
        if project:
            if f_src == -1:
                raise ValueError("'SAGEConv' does not support lazy initialization with `project=True`")
            self.lin = nn.Linear(f_src, f_src, bias=True, **dd)
        self.lin_l = _linear(f_src, out_channels, bias, dd)
        if root_weight:
            self.lin_r = _linear(f_dst, out_channels, False, dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default ``Linear`` initialisation of every projection."""
        _reset_linear(getattr(self, "lin", None))
        _reset_linear(self.lin_l)
        _reset_linear(getattr(self, "lin_r", None))

    def forward(self, x: PairLike, edge_index: GraphLike, *, batch: Tensor | None = None) -> Tensor:
        """Aggregate the neighbours and add the root term.

        Args:
            x: ``(N, F_in)``, ``(B, N, F_in)`` or a bipartite ``(x_src, x_dst)`` pair.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.

        Returns:
            The output features.
        """
        x_src, x_dst = _src_dst(x)
        _materialize(self.lin_l, x_src)
        lin_r = getattr(self, "lin_r", None)
        if lin_r is not None:
            _materialize(lin_r, x_dst)
        lin = getattr(self, "lin", None)
        return sage_conv(
            x,
            edge_index,
            self.lin_l.weight,
            self.lin_l.bias,
            None if lin_r is None else lin_r.weight,
            aggr=self.aggr,
            normalize=self.normalize,
            project_weight=None if lin is None else lin.weight,
            project_bias=None if lin is None else lin.bias,
            batch=batch,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, aggr={self.aggr})"


class GraphConv(nn.Module):
    r"""Graph convolution of Morris et al., `"Weisfeiler and Leman Go Neural: Higher-order Graph
    Neural Networks" <https://arxiv.org/abs/1810.02244>`_; PyG's ``GraphConv``.

    .. math::
        \mathbf{x}'_i = \mathbf{W}_1 \mathbf{x}_i + \mathbf{W}_2 \,
        \mathrm{aggr}_{j \in \mathcal{N}(i)} e_{j,i} \cdot \mathbf{x}_j

    See :func:`graphvision.functional.graph_conv`. Parameterised as PyG (``lin_rel`` with the
    bias, ``lin_root`` without).

    Args:
        in_channels: Input features per node, ``-1`` for lazy, or a ``(F_src, F_dst)`` pair.
        out_channels: Output features :math:`F_{out}`.
        aggr: ``"add"`` (alias ``"sum"``), ``"mean"`` or ``"max"``.
        bias: Learn an additive bias.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(N, F_{in})`, :math:`(B, N, F_{in})` (shared or per-sample graph) or
          :math:`((N_s, F_s), (N_t, F_t))`
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - edge_weight: :math:`(E,)`, optional
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> conv = graphvision.nn.GraphConv(16, 32)
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> conv(x, edge_index, torch.rand(3)).shape
        torch.Size([4, 32])
    """

    _capabilities = {**_CAPS, "edge_weight": True, "fused_kernel": "spmm"}

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        aggr: str = "add",
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        f_src, f_dst = _in_pair(in_channels)
        check_choice(aggr, ("add", "sum", "mean", "max"), "aggr")
        self.in_channels = in_channels
        self.out_channels = _pos(out_channels, "out_channels")
        self.aggr = aggr
        dd = {"device": device, "dtype": dtype}
        self.lin_rel = _linear(f_src, out_channels, bias, dd)
        self.lin_root = _linear(f_dst, out_channels, False, dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default ``Linear`` initialisation of both projections."""
        _reset_linear(self.lin_rel)
        _reset_linear(self.lin_root)

    def forward(
        self,
        x: PairLike,
        edge_index: GraphLike,
        edge_weight: Tensor | None = None,
        *,
        batch: Tensor | None = None,
    ) -> Tensor:
        """Aggregate the (weighted) neighbours and add the root term.

        Args:
            x: ``(N, F_in)``, ``(B, N, F_in)`` or a bipartite ``(x_src, x_dst)`` pair.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_weight: Optional ``(E,)`` edge weights.
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.

        Returns:
            The output features.
        """
        x_src, x_dst = _src_dst(x)
        _materialize(self.lin_rel, x_src)
        _materialize(self.lin_root, x_dst)
        return graph_conv(
            x,
            edge_index,
            self.lin_rel.weight,
            self.lin_rel.bias,
            self.lin_root.weight,
            edge_weight,
            aggr=self.aggr,
            batch=batch,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels})"


# --------------------------------------------------------------------------------------------
# GIN, GINE
# --------------------------------------------------------------------------------------------


def _reset_module(m: nn.Module) -> None:
    """Re-initialise every child that has ``reset_parameters`` (PyG's ``reset``)."""
    for child in m.modules():
        if child is not m and hasattr(child, "reset_parameters") and not _is_lazy(child):
            child.reset_parameters()
    if hasattr(m, "reset_parameters") and not _is_lazy(m):
        m.reset_parameters()


class _GINBase(nn.Module):
    def _init_gin(self, nn_: Callable[[Tensor], Tensor], eps: float, train_eps: bool, dd: dict) -> None:
        self.nn = nn_
        self.initial_eps = float(eps)
        self.train_eps = _check_bool(train_eps, "train_eps")
        if train_eps:
            self.eps = nn.Parameter(torch.empty(1, **dd))
        else:
            self.register_buffer("eps", torch.empty(1, **dd))

    def _reset_gin(self) -> None:
        if isinstance(self.nn, nn.Module):
            _reset_module(self.nn)
        with torch.no_grad():
            self.eps.fill_(self.initial_eps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nn={self.nn})"


class GINConv(_GINBase):
    r"""Graph isomorphism convolution of Xu et al., `"How Powerful are Graph Neural Networks?"
    <https://arxiv.org/abs/1810.00826>`_; PyG's ``GINConv``.

    .. math::
        \mathbf{x}'_i = h_{\mathbf{\Theta}}\Big((1 + \epsilon)\,\mathbf{x}_i +
        \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j\Big)

    See :func:`graphvision.functional.gin_conv`. ``eps`` is a parameter with ``train_eps`` and
    a buffer otherwise (the state-dict key is ``eps`` either way, as PyG).

    Args:
        nn: The network :math:`h_{\mathbf{\Theta}}`, e.g. a :class:`torch.nn.Sequential`.
        eps: Initial :math:`\epsilon`.
        train_eps: Learn :math:`\epsilon`.
        device: Device of ``eps``.
        dtype: Dtype of ``eps``.

    Shape:
        - x: :math:`(N, F)`, :math:`(B, N, F)` (shared or per-sample graph) or :math:`((N_s, F), (N_t, F))`
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> conv = graphvision.nn.GINConv(torch.nn.Linear(16, 32), train_eps=True)
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> conv(x, edge_index).shape
        torch.Size([4, 32])
    """

    _capabilities = {**_CAPS, "fused_kernel": "spmm"}

    def __init__(
        self,
        nn: Callable[[Tensor], Tensor],
        eps: float = 0.0,
        train_eps: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self._init_gin(nn, eps, train_eps, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise ``nn`` and set ``eps`` to its initial value."""
        self._reset_gin()

    def forward(self, x: PairLike, edge_index: GraphLike, *, batch: Tensor | None = None) -> Tensor:
        """Sum the neighbours, add the weighted node, apply ``nn``.

        Args:
            x: ``(N, F)``, ``(B, N, F)`` or a bipartite ``(x_src, x_dst)`` pair.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.

        Returns:
            The output features.
        """
        return gin_conv(x, edge_index, self.nn, self.eps, batch=batch)


class GINEConv(_GINBase):
    r"""GIN with edge features of Hu et al., `"Strategies for Pre-training Graph Neural Networks"
    <https://arxiv.org/abs/1905.12265>`_; PyG's ``GINEConv``.

    .. math::
        \mathbf{x}'_i = h_{\mathbf{\Theta}}\Big((1 + \epsilon)\,\mathbf{x}_i +
        \sum_{j \in \mathcal{N}(i)} \operatorname{ReLU}(\mathbf{x}_j + \mathbf{e}_{j,i})\Big)

    See :func:`graphvision.functional.gine_conv`. With ``edge_dim`` the edge features are first
    projected by ``lin`` to the input size of ``nn`` (read from ``nn`` or its first layer's
    ``in_features``/``in_channels``, as PyG).

    Args:
        nn: The network :math:`h_{\mathbf{\Theta}}`, e.g. a :class:`torch.nn.Sequential`.
        eps: Initial :math:`\epsilon`.
        train_eps: Learn :math:`\epsilon`.
        edge_dim: Edge feature size; ``None`` needs edge features of the node feature size.
        device: Device of ``eps`` and ``lin``.
        dtype: Dtype of ``eps`` and ``lin``.

    Shape:
        - x: :math:`(N, F)`, :math:`(B, N, F)` (shared or per-sample graph) or :math:`((N_s, F), (N_t, F))`
        - edge_index: :math:`(2, E)`, a ``GraphStructure``, or a list of :math:`B` of them
        - edge_attr: :math:`(E, D)`
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> conv = graphvision.nn.GINEConv(torch.nn.Linear(16, 32), edge_dim=3)
        >>> x = torch.randn(4, 16)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> conv(x, edge_index, torch.randn(3, 3)).shape
        torch.Size([4, 32])
    """

    _capabilities = {**_CAPS, "fused_kernel": False}

    def __init__(
        self,
        nn: Callable[[Tensor], Tensor],
        eps: float = 0.0,
        train_eps: bool = False,
        edge_dim: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self._init_gin(nn, eps, train_eps, dd)
        self.edge_dim = None if edge_dim is None else _pos(edge_dim, "edge_dim")
        if edge_dim is not None:
            first = nn[0] if isinstance(nn, torch.nn.Sequential) else nn
            if hasattr(first, "in_features"):
                in_channels = first.in_features
            elif hasattr(first, "in_channels"):
                in_channels = first.in_channels
            else:
                raise ValueError("Could not infer input channels from `nn`.")
            self.lin: nn.Linear | None = torch.nn.Linear(edge_dim, in_channels, **dd)
        else:
            self.lin = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise ``nn`` and ``lin``, set ``eps`` to its initial value."""
        self._reset_gin()
        if self.lin is not None:
            self.lin.reset_parameters()

    def forward(
        self, x: PairLike, edge_index: GraphLike, edge_attr: Tensor, *, batch: Tensor | None = None
    ) -> Tensor:
        """Sum the edge-conditioned neighbour messages, add the weighted node, apply ``nn``.

        Args:
            x: ``(N, F)``, ``(B, N, F)`` or a bipartite ``(x_src, x_dst)`` pair.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_attr: ``(E, D)`` edge features.
            batch: ``(B * N,)`` marks ``edge_index`` as offset over the flattened batch nodes.

        Returns:
            The output features.
        """
        return gine_conv(
            x,
            edge_index,
            edge_attr,
            self.nn,
            self.eps,
            None if self.lin is None else self.lin.weight,
            None if self.lin is None else self.lin.bias,
            batch=batch,
        )
