r"""Graph pooling modules over :mod:`graphvision.functional` (``_pool``).

Each class has a private ``_capabilities`` dict read by the docs (see :mod:`graphvision.nn._conv`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from graphvision._checks import check_positive_int, check_tensor
from graphvision.functional._graph_input import GraphLike, WeightLike, check_x, resolve_graph
from graphvision.functional._pool import (
    _NONLINEARITIES,
    PooledGraph,
    TopKOutput,
    _check_pyg_ratio,
    _reject_batch_for_batched,
    _sag,
    _Selection,
    global_attention_pool,
    per_graph_topk_pool,
)
from graphvision.nn._conv import GCNConv, _check_bool, _check_unit
from graphvision.structure import GraphStructure  # noqa: F401  (resolves the GraphLike hints)

__all__ = ["AttentionPooling", "TopKPooling", "SAGPooling"]

_CAPS = {
    "batched": True,
    "per_sample_graph": True,
    "edge_weight": False,
    "compile_safe": True,
    # On CUDA the torch backend's scatter / index_add_ use atomics (last-bit differences).
    "deterministic": "CPU only",
}


class _GatedAttention(nn.Module):
    r"""Gated attention scores of Ilse et al.: :math:`\mathbf{W}(\tanh(\mathbf{V}\mathbf{x}) \odot \sigma(\mathbf{U}\mathbf{x}))`."""

    def __init__(self, in_channels: int, hidden: int, heads: int, gated: bool, dropout: float, dd: dict) -> None:
        super().__init__()
        self.V = nn.Linear(in_channels, hidden, **dd)
        self.U = nn.Linear(in_channels, hidden, **dd) if gated else None
        self.W = nn.Linear(hidden, heads, **dd)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        for m in (self.V, self.U, self.W):
            if m is not None:
                m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.V(x))
        if self.U is not None:
            h = h * torch.sigmoid(self.U(x))
        return self.W(self.dropout(h))


class AttentionPooling(nn.Module):
    r"""Gated attention readout, multi-head, returning node scores for heatmaps: gated attention
    MIL pooling of Ilse et al., `"Attention-based Deep Multiple Instance Learning"
    <https://arxiv.org/abs/1802.04712>`_ (the readout of ABMIL/CLAM in computational pathology),
    and the global attention of Li et al. (`"Gated Graph Sequence Neural Networks"
    <https://arxiv.org/abs/1511.05493>`_) with a custom ``gate_nn``.

    .. math::
        g^{k}_i = \mathbf{w}_k^\top\big(\tanh(\mathbf{V}\mathbf{x}_i) \odot
        \sigma(\mathbf{U}\mathbf{x}_i)\big), \qquad
        a^{k}_i = \operatorname{softmax}_{i \in b}\, g^{k}_i, \qquad
        \mathbf{r}^{k}_b = \sum_{i \in b} a^{k}_i\, f(\mathbf{x}_i)

    (without the sigmoid gate when ``gated=False``; :math:`f` = ``nn`` or the identity). Heads
    are concatenated or averaged. The weighted sums run on :func:`graphvision.ops.global_attention_pool`;
    see :func:`graphvision.functional.global_attention_pool`.

    Args:
        in_channels: Features per node :math:`F`.
        hidden_channels: Width of the gate network.
        heads: Number of attention heads :math:`K`.
        gated: Use the sigmoid gate branch (Ilse et al.'s gated attention).
        concat: Concatenate the heads (``(B, K * F)``), else average them (``(B, F)``).
        dropout: Dropout inside the gate network.
        gate_nn: Optional custom gate network ``(.., F) -> (.., K)`` replacing the default.
        nn: Optional feature network :math:`f` applied before the weighted sum.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: flat :math:`(N, F)` with ``batch`` :math:`(N,)`, or batched :math:`(B, N, F)`
        - output: :math:`(B, K F)` (concat) or :math:`(B, F)` (:math:`F` = output of ``nn`` if given)
        - attention (``return_attention_weights``): :math:`(N, K)` or :math:`(B, N, K)`, summing to 1 per graph

    Example:
        >>> pool = graphvision.nn.AttentionPooling(16, heads=2)
        >>> x = torch.randn(3, 49, 16)  # 3 graphs of 49 nodes
        >>> out, attn = pool(x, return_attention_weights=True)
        >>> out.shape, attn.shape
        (torch.Size([3, 32]), torch.Size([3, 49, 2]))
    """

    _capabilities = {**_CAPS, "fused_kernel": "global_attention_pool"}

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 128,
        heads: int = 1,
        gated: bool = True,
        concat: bool = True,
        dropout: float = 0.0,
        gate_nn: nn.Module | None = None,
        nn: nn.Module | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.hidden_channels = check_positive_int(hidden_channels, "hidden_channels")
        self.heads = check_positive_int(heads, "heads")
        self.gated = _check_bool(gated, "gated")
        self.concat = _check_bool(concat, "concat")
        self.dropout = _check_unit(dropout, "dropout", closed=False)
        dd = {"device": device, "dtype": dtype}
        if gate_nn is not None and not isinstance(gate_nn, torch.nn.Module):
            raise TypeError(f"Expected 'gate_nn' to be a module (got {type(gate_nn).__name__})")
        self.gate_nn = gate_nn if gate_nn is not None else _GatedAttention(in_channels, hidden_channels, heads, gated, dropout, dd)
        self.nn = nn
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the gate network and ``nn`` (their own ``reset_parameters``)."""
        for mod in (self.gate_nn, self.nn):
            if mod is None:
                continue
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
            else:
                for m in mod.modules():
                    if m is not mod and hasattr(m, "reset_parameters"):
                        m.reset_parameters()

    def forward(
        self,
        x: Tensor,
        batch: Tensor | None = None,
        size: int | None = None,
        *,
        mask: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attention readout.

        Args:
            x: Flat ``(N, F)`` or batched ``(B, N, F)``.
            batch: ``(N,)`` graph ids for flat ``x`` (``None``: one graph).
            size: Number of graphs for flat ``x`` (pass it to avoid a host sync).
            mask: ``(B, N)`` bool real nodes of padded batched graphs.
            return_attention_weights: Also return the normalised node scores (heatmap).

        Returns:
            The readout, and the ``(N, K)`` / ``(B, N, K)`` node scores with ``return_attention_weights``.
        """
        x = check_x(x)
        if x.size(-1) != self.in_channels:
            raise ValueError(
                f"Expected 'x' with in_channels={self.in_channels} features in its last dimension (got {tuple(x.shape)})"
            )
        gate = self.gate_nn(x)
        if gate.shape[:-1] != x.shape[:-1] or gate.size(-1) != self.heads:
            raise ValueError(
                f"Expected 'gate_nn' to return {tuple(x.shape[:-1]) + (self.heads,)} (got {tuple(gate.shape)})"
            )
        feats = self.nn(x) if self.nn is not None else x
        out, attn = global_attention_pool(feats, gate, batch, size, mask=mask, return_attention_weights=True)
        out = out.flatten(-2) if self.concat else out.mean(-2)
        if return_attention_weights:
            return out, attn
        return out

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, hidden_channels={self.hidden_channels}, heads={self.heads}"
        if not self.gated:
            s += ", gated=False"
        if not self.concat:
            s += ", concat=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


class _DefaultRatio(float):
    """PyG's default ``ratio=0.5``, told apart from an explicit ``0.5`` (so ``k=`` can be checked)."""

    def __repr__(self) -> str:
        return "0.5"


_RATIO_DEFAULT = _DefaultRatio(0.5)

#: The static path compiles as is; the pooled graph and PyG's path have data-dependent sizes.
_TOPK_COMPILE = "static path; pooled graph and PyG's path with capture_dynamic_output_shape_ops"


def _resolve_ratio(ratio: float | int | None, k: int | None, min_score: float | None) -> float | int | None:
    """The selection size: ``k`` (an alias of an int ``ratio``) or ``ratio`` (PyG: int = count, float = fraction)."""
    if k is not None:
        if ratio is not _RATIO_DEFAULT:
            raise ValueError(f"Pass exactly one of 'k' and 'ratio' (got k={k!r}, ratio={ratio!r})")
        check_positive_int(k, "k")
        ratio = k
    elif ratio is _RATIO_DEFAULT:
        ratio = 0.5
    _check_pyg_ratio(ratio, min_score)
    return ratio


class _SelectTopK(nn.Module):
    """The projection vector :math:`\\mathbf{p}` ``(1, F)``, as PyG's ``SelectTopK`` (key ``select.weight``)."""

    def __init__(self, in_channels: int, dd: dict) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.weight = nn.Parameter(torch.empty(1, in_channels, **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)

    def __repr__(self) -> str:
        return f"SelectTopK({self.in_channels})"


class _TopKBase(nn.Module):
    """Shared selection of :class:`TopKPooling` and :class:`SAGPooling`: static or PyG's per-graph path."""

    in_channels: int
    ratio: float | int | None
    k: int | None
    min_score: float | None
    multiplier: float
    nonlinearity: str
    select: _SelectTopK

    def _init_selection(
        self, ratio: float | int | None, k: int | None, min_score: float | None, multiplier: float, nonlinearity: str
    ) -> None:
        self.ratio = _resolve_ratio(ratio, k, min_score)
        self.k = k
        self.min_score = None if min_score is None else float(min_score)
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
            raise ValueError(f"Expected 'multiplier' to be a float (got {multiplier!r})")
        self.multiplier = float(multiplier)
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; expected one of {_NONLINEARITIES}")
        self.nonlinearity = nonlinearity

    @property
    def weight(self) -> Tensor:
        """The projection vector ``select.weight`` (alias)."""
        return self.select.weight

    def _pool(
        self,
        x: Tensor,
        proj: Tensor,
        edge_index: GraphLike | None,
        edge_attr: Tensor | None,
        batch: Tensor | None,
        size: int | None,
        mask: Tensor | None,
        max_num_nodes: int | None,
    ) -> TopKOutput | PooledGraph:
        """Select from the projections ``proj = attn @ p`` (not yet divided by ``|p|``)."""
        norm = self.select.weight.norm(p=2)
        if x.dim() == 2 and max_num_nodes is None:
            if mask is not None:
                raise ValueError("'mask' is only used with batched 'x' of shape (B, N, F)")
            if isinstance(edge_index, (list, tuple)):
                raise ValueError("A list of per-sample graphs needs batched 'x' of shape (B, N, F)")
            score = proj if self.min_score is not None else proj / norm
            return per_graph_topk_pool(
                x,
                score,
                edge_index,
                edge_attr,
                batch,
                ratio=self.ratio,
                min_score=self.min_score,
                nonlinearity=self.nonlinearity,
                size=size,
                multiplier=self.multiplier,
            )
        if self.min_score is not None:
            raise ValueError(
                "'min_score' keeps a data-dependent number of nodes: call with flat 'x' of shape (N, F) "
                "without 'max_num_nodes' (PyG's per-graph path), or use 'ratio'/'k' for static shapes"
            )
        if x.dim() == 3 and batch is not None and edge_index is None:
            _reject_batch_for_batched(x, batch)
        graph = None
        if edge_index is not None:
            graph = resolve_graph(x, edge_index, None, batch)[1]
        elif edge_attr is not None:
            raise ValueError("'edge_attr' was given without 'edge_index'")
        k, ratio = (self.ratio, None) if isinstance(self.ratio, int) else (None, self.ratio)
        sel = _Selection(k, ratio, self.nonlinearity, self.multiplier)
        return _sag(x, proj / norm, sel, batch if x.dim() == 2 else None, size, mask, max_num_nodes, graph, edge_attr)

    def extra_repr(self) -> str:
        if self.min_score is not None:
            sel = f"min_score={self.min_score}"
        elif self.k is not None:
            sel = f"k={self.k}"
        else:
            sel = f"ratio={self.ratio}"
        s = f"{self.in_channels}, {sel}"
        if self.multiplier != 1.0:
            s += f", multiplier={self.multiplier}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


def _check_attn(x: Tensor, attn: Tensor | None, features: int | None) -> Tensor:
    if attn is None:
        return x
    check_tensor(attn, "attn")
    a = attn.view(-1, 1) if attn.dim() == 1 else attn
    if a.shape[:-1] != x.shape[:-1] or (features is not None and a.size(-1) != features):
        want = tuple(x.shape[:-1]) + (features if features is not None else "F'",)
        raise ValueError(f"Expected 'attn' of shape {want} (got {tuple(attn.shape)})")
    return a


def _check_edge_index_arg(edge_index: object) -> None:
    if isinstance(edge_index, Tensor) and edge_index.dim() == 1:
        raise ValueError(
            f"Expected 'edge_index' of shape (2, E) (got {tuple(edge_index.shape)}): the arguments follow PyG's "
            "order (x, edge_index, edge_attr, batch); pass graph ids as batch=..."
        )




class TopKPooling(_TopKBase):
    r"""Top-k pooling of Gao & Ji, `"Graph U-Nets" <https://arxiv.org/abs/1905.05178>`_ (and
    Cangea et al.), PyG's ``TopKPooling`` with a static-shape path.

    .. math::
        \mathbf{y} = \tanh\Big(\frac{\mathbf{X}\mathbf{p}}{\lVert \mathbf{p} \rVert}\Big), \quad
        \mathbf{i} = \operatorname{top}_k(\mathbf{y}), \quad
        \mathbf{X}' = \big(\mathbf{X} \odot \mathbf{y}\big)_{\mathbf{i}}, \quad
        \mathbf{A}' = \mathbf{A}_{\mathbf{i}, \mathbf{i}}

    (with ``min_score``: :math:`\mathbf{y} = \operatorname{softmax}(\mathbf{X}\mathbf{p})` per
    graph, keeping :math:`y_i > \tilde\alpha`). Arguments, defaults and the state_dict key
    (``select.weight``, shape ``(1, F)``) are PyG's: a PyG state_dict loads with ``strict=True``.

    **Two paths**, chosen by the input layout:

    - *PyG's* (flat ``x`` of shape ``(N, F)`` without ``max_num_nodes``): each graph of ``batch``
      keeps ``ceil(ratio * N_b)`` nodes (float ``ratio``), ``min(ratio, N_b)`` (int ``ratio``),
      or those above ``min_score``; returns a :class:`graphvision.functional.PooledGraph`
      ``(x, edge_index, edge_attr, batch, perm, score)`` like PyG (plus ``.graph``), see
      :func:`graphvision.functional.per_graph_topk_pool`. Data-dependent shapes.
    - *static* (batched ``(B, N, F)``, or flat with ``batch``, ``size`` and
      ``max_num_nodes``): the same ``k`` per graph (``ratio`` refers to the padded size ``N``),
      returning a :class:`graphvision.functional.TopKOutput` ``(x (B, k, F), index, mask, score)``
      with masks, which compiles with ``fullgraph=True``. With a graph, the pooled graph over the
      ``B * k`` slots is attached (``out.edge_index``, ``out.edge_attr``, ``out.graph``,
      ``out.batch``); its edge count depends on the data (one host read), so that part traces
      with ``fullgraph=True`` only with ``torch._dynamo.config.capture_scalar_outputs`` and
      ``capture_dynamic_output_shape_ops`` on. ``min_score`` is not available here.

    In both, the pooled edges are those among the kept nodes, relabelled, sorted by target, with
    ``edge_attr`` filtered alike (PyG keeps the input edge order: the same set).

    Args:
        in_channels: Features per node :math:`F`.
        ratio: Nodes kept per graph: a float fraction in ``(0, 1]`` (``ceil``) or an int count.
        min_score: Keep the nodes whose softmax score exceeds it (PyG's path only).
        multiplier: Factor on the kept features.
        nonlinearity: ``"tanh"``, ``"sigmoid"`` or ``"none"``.
        k: Alias of an int ``ratio`` (the count kept per graph).
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(B, N, F)`, or flat :math:`(N, F)` with ``batch``
        - edge_index: :math:`(2, E)`, optional; edge_attr: :math:`(E, *)`
        - output (static): x :math:`(B, k, F)`; index, mask, score :math:`(B, k)`
        - output (PyG's): x :math:`(M, F)`; edge_index :math:`(2, E')`; batch, perm, score :math:`(M,)`

    Example:
        >>> pool = graphvision.nn.TopKPooling(16, ratio=0.25)
        >>> out = pool(torch.randn(2, 64, 16))
        >>> out.x.shape, out.index.shape
        (torch.Size([2, 16, 16]), torch.Size([2, 16]))
        >>> x, ei = torch.randn(10, 16), torch.tensor([[0, 1, 2, 5, 6], [1, 2, 3, 6, 7]])
        >>> batch = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
        >>> x, edge_index, edge_attr, batch, perm, score = pool(x, ei, batch=batch)
        >>> x.shape, batch.tolist()
        (torch.Size([3, 16]), [0, 1, 1])
    """

    _capabilities = {**_CAPS, "fused_kernel": False, "compile_safe": _TOPK_COMPILE}

    def __init__(
        self,
        in_channels: int,
        ratio: float | int | None = _RATIO_DEFAULT,
        min_score: float | None = None,
        multiplier: float = 1.0,
        nonlinearity: str = "tanh",
        *,
        k: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self._init_selection(ratio, k, min_score, multiplier, nonlinearity)
        self.select = _SelectTopK(in_channels, {"device": device, "dtype": dtype})

    def reset_parameters(self) -> None:
        """Uniform :math:`\\pm 1/\\sqrt{F}` projection vector (PyG)."""
        self.select.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: GraphLike | None = None,
        edge_attr: Tensor | None = None,
        batch: Tensor | None = None,
        attn: Tensor | None = None,
        *,
        size: int | None = None,
        mask: Tensor | None = None,
        max_num_nodes: int | None = None,
    ) -> TopKOutput | PooledGraph:
        """Select the top nodes of each graph (and the pooled graph when ``edge_index`` is given).

        Args:
            x: ``(B, N, F)`` or flat ``(N, F)``.
            edge_index: Optional graph (see :func:`graphvision.functional.topk_pool` for the
                layouts of batched ``x``).
            edge_attr: Optional ``(E, *)`` edge attributes, filtered with the edges.
            batch: Flat ``x``: ``(N,)`` graph ids (sorted for the static path). Batched ``x``:
                marks an offset ``edge_index`` over the ``B * N`` nodes.
            attn: Optional ``(.., F)`` node features scored instead of ``x`` (PyG's ``attn``).
            size: Number of graphs (flat ``x``).
            mask: ``(B, N)`` bool real nodes (batched ``x``).
            max_num_nodes: Flat ``x``: padded size per graph; selects the static path.

        Returns:
            ``TopKOutput`` (static path) or ``PooledGraph`` (PyG's path).
        """
        x = check_x(x)
        if x.size(-1) != self.in_channels:
            raise ValueError(
                f"Expected 'x' with in_channels={self.in_channels} features in its last dimension "
                f"(got {tuple(x.shape)})"
            )
        _check_edge_index_arg(edge_index)
        a = _check_attn(x, attn, self.in_channels)
        proj = (a * self.select.weight.view(-1)).sum(-1)
        return self._pool(x, proj, edge_index, edge_attr, batch, size, mask, max_num_nodes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # checkpoints from before the PyG key layout stored the projection as 'weight'
        if prefix + "weight" in state_dict and prefix + "select.weight" not in state_dict:
            state_dict[prefix + "select.weight"] = state_dict.pop(prefix + "weight")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class SAGPooling(_TopKBase):
    r"""Self-attention graph pooling of Lee et al., `"Self-Attention Graph Pooling"
    <https://arxiv.org/abs/1904.08082>`_: node scores from a graph convolution, then top-k.

    .. math::
        \mathbf{y} = \tanh\Big(\frac{\mathrm{GNN}(\mathbf{X}, \mathbf{A})\, p}{|p|}\Big), \quad
        \mathbf{i} = \operatorname{top}_k(\mathbf{y}), \quad
        \mathbf{X}' = \big(\mathbf{X} \odot \mathbf{y}\big)_{\mathbf{i}}, \quad
        \mathbf{A}' = \mathbf{A}_{\mathbf{i}, \mathbf{i}}

    PyG's ``SAGPooling``: the GNN is ``GNN(in_channels, 1, **kwargs)`` and a one-channel
    ``select.weight`` :math:`p` (shape ``(1, 1)``, so only its sign matters) follows, as in PyG,
    so a PyG state_dict loads with ``strict=True`` **when the same GNN is used**: graphvision
    defaults to :class:`GCNConv` (the paper's), PyG to ``GraphConv``; pass
    ``GNN=graphvision.nn.GraphConv`` for PyG's default. The GNN accepts every graph layout of the
    convolutions (one graph, a graph shared by a ``(B, N, F)`` batch, per-sample graphs).

    **Two paths**, chosen by the input layout:

    - *PyG's* (flat ``x`` of shape ``(N, F)`` without ``max_num_nodes``): each graph of ``batch``
      keeps ``ceil(ratio * N_b)`` nodes (float ``ratio``), ``min(ratio, N_b)`` (int ``ratio``),
      or those above ``min_score``; returns a :class:`graphvision.functional.PooledGraph`
      ``(x, edge_index, edge_attr, batch, perm, score)`` like PyG (plus ``.graph``), see
      :func:`graphvision.functional.per_graph_topk_pool`. Data-dependent shapes.
    - *static* (batched ``(B, N, F)``, or flat with ``batch``, ``size`` and
      ``max_num_nodes``): the same ``k`` per graph (``ratio`` refers to the padded size ``N``),
      returning a :class:`graphvision.functional.TopKOutput` ``(x (B, k, F), index, mask, score)``
      with masks, which compiles with ``fullgraph=True``. With a graph, the pooled graph over the
      ``B * k`` slots is attached (``out.edge_index``, ``out.edge_attr``, ``out.graph``,
      ``out.batch``); its edge count depends on the data (one host read), so that part traces
      with ``fullgraph=True`` only with ``torch._dynamo.config.capture_scalar_outputs`` and
      ``capture_dynamic_output_shape_ops`` on. ``min_score`` is not available here.

    In both, the pooled edges are those among the kept nodes, relabelled, sorted by target, with
    ``edge_attr`` filtered alike (PyG keeps the input edge order: the same set).

    Args:
        in_channels: Features per node :math:`F`.
        ratio: Nodes kept per graph: a float fraction in ``(0, 1]`` (``ceil``) or an int count.
        GNN: Class of the scoring GNN, built as ``GNN(in_channels, 1, **kwargs)``.
        min_score: Keep the nodes whose softmax score exceeds it (PyG's path only).
        multiplier: Factor on the kept features.
        nonlinearity: ``"tanh"``, ``"sigmoid"`` or ``"none"``.
        k: Alias of an int ``ratio`` (the count kept per graph).
        gnn: A ready scoring module instead of ``GNN``, called as ``gnn(x, edge_index, edge_weight)``
            returning one score per node.
        device: Parameter device.
        dtype: Parameter dtype.
        **kwargs: Passed to ``GNN``.

    Shape:
        - x: :math:`(B, N, F)`, or flat :math:`(N, F)` with ``batch``
        - edge_index: :math:`(2, E)` (see :class:`GCNConv` for the layouts); edge_attr: :math:`(E, *)`
        - output (static): x :math:`(B, k, F)`; index, mask, score :math:`(B, k)`
        - output (PyG's): x :math:`(M, F)`; edge_index :math:`(2, E')`; batch, perm, score :math:`(M,)`

    Example:
        >>> pool = graphvision.nn.SAGPooling(16, k=2)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> out = pool(torch.randn(3, 4, 16), edge_index)
        >>> out.x.shape, out.mask.shape, out.graph.num_nodes
        (torch.Size([3, 2, 16]), torch.Size([3, 2]), 6)
        >>> x, ei, _, batch, perm, score = graphvision.nn.SAGPooling(16, 0.5)(torch.randn(4, 16), edge_index)
        >>> x.shape, ei.size(0)
        (torch.Size([2, 16]), 2)
    """

    _capabilities = {**_CAPS, "edge_weight": True, "fused_kernel": "spmm", "compile_safe": _TOPK_COMPILE}

    def __init__(
        self,
        in_channels: int,
        ratio: float | int | None = _RATIO_DEFAULT,
        GNN: type[nn.Module] = GCNConv,  # noqa: N803  (PyG's name)
        min_score: float | None = None,
        multiplier: float = 1.0,
        nonlinearity: str = "tanh",
        *,
        k: int | None = None,
        gnn: nn.Module | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self._init_selection(ratio, k, min_score, multiplier, nonlinearity)
        if gnn is not None:
            if not isinstance(gnn, nn.Module):
                raise TypeError(f"Expected 'gnn' to be a module (got {type(gnn).__name__})")
            self.gnn = gnn
        else:
            dd = {key: v for key, v in (("device", device), ("dtype", dtype)) if v is not None}
            self.gnn = GNN(in_channels, 1, **dd, **kwargs)
        self.select = _SelectTopK(1, {"device": device, "dtype": dtype})

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # checkpoints from before the PyG key layout had no 'select.weight': +1 keeps their scores
        has_gnn = any(k.startswith(prefix + "gnn.") for k in state_dict)
        if has_gnn and prefix + "select.weight" not in state_dict:
            state_dict[prefix + "select.weight"] = torch.ones_like(self.select.weight)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reset_parameters(self) -> None:
        """Re-initialise the scoring GNN and ``select.weight``."""
        if hasattr(self.gnn, "reset_parameters"):
            self.gnn.reset_parameters()
        self.select.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: GraphLike,
        edge_attr: Tensor | None = None,
        batch: Tensor | None = None,
        attn: Tensor | None = None,
        *,
        edge_weight: WeightLike = None,
        size: int | None = None,
        mask: Tensor | None = None,
        max_num_nodes: int | None = None,
    ) -> TopKOutput | PooledGraph:
        """Score the nodes with the GNN and select the top ones of each graph, with the pooled graph.

        Args:
            x: ``(B, N, F)`` or flat ``(N, F)``.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_attr: Optional ``(E, *)`` edge attributes, filtered with the edges (as PyG, not
                given to the GNN).
            batch: Flat ``x``: ``(N,)`` graph ids (sorted for the static path). Batched ``x``:
                marks an offset ``edge_index`` over the ``B * N`` nodes (as for the convolutions).
            attn: Optional node features scored instead of ``x`` (PyG's ``attn``).
            edge_weight: Optional ``(E,)`` edge weights given to the GNN.
            size: Number of graphs (flat ``x``).
            mask: ``(B, N)`` bool real nodes (batched ``x``).
            max_num_nodes: Flat ``x``: padded size per graph; selects the static path.

        Returns:
            ``TopKOutput`` (static path) or ``PooledGraph`` (PyG's path).
        """
        x = check_x(x)
        _check_edge_index_arg(edge_index)
        a = _check_attn(x, attn, None)
        kw = {"batch": batch} if x.dim() == 3 and batch is not None else {}
        s = self.gnn(a, edge_index, edge_weight, **kw)
        if s.shape[:-1] != x.shape[:-1] and s.shape != x.shape[:-1]:
            raise ValueError(
                f"Expected 'gnn' to return one score per node {tuple(x.shape[:-1])} (got {tuple(s.shape)})"
            )
        s = s.reshape(x.shape[:-1])
        proj = s * self.select.weight.view(())
        return self._pool(x, proj, edge_index, edge_attr, batch, size, mask, max_num_nodes)
