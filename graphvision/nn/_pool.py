r"""Graph pooling modules over :mod:`graphvision.functional` (``_pool``).

Each class has a private ``_capabilities`` dict read by the docs (see :mod:`graphvision.nn._conv`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from graphvision._checks import check_positive_int
from graphvision.functional import _pool as F_pool  # noqa: N812
from graphvision.functional._mp import GraphLike, WeightLike
from graphvision.structure import GraphStructure  # noqa: F401  (resolves the GraphLike hints)
from graphvision.nn._conv import GCNConv, _check_bool, _check_unit

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
    are concatenated or averaged. The weighted sums run on :func:`graphvision.ops.attention_pool`;
    see :func:`graphvision.functional.attention_pooling`.

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
        - attention (``return_attention``): :math:`(N, K)` or :math:`(B, N, K)`, summing to 1 per graph

    Example:
        >>> pool = graphvision.nn.AttentionPooling(16, heads=2)
        >>> x = torch.randn(3, 49, 16)  # 3 graphs of 49 nodes
        >>> out, attn = pool(x, return_attention=True)
        >>> out.shape, attn.shape
        (torch.Size([3, 32]), torch.Size([3, 49, 2]))
    """

    _capabilities = {**_CAPS, "fused_kernel": "attention_pool"}

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
        num_graphs: int | None = None,
        *,
        mask: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attention readout.

        Args:
            x: Flat ``(N, F)`` or batched ``(B, N, F)``.
            batch: ``(N,)`` graph ids for flat ``x`` (``None``: one graph).
            num_graphs: Number of graphs for flat ``x`` (pass it to avoid a host sync).
            mask: ``(B, N)`` bool real nodes of padded batched graphs.
            return_attention: Also return the normalised node scores (heatmap).

        Returns:
            The readout, and the ``(N, K)`` / ``(B, N, K)`` node scores with ``return_attention``.
        """
        x = F_pool._check_pool_x(x)
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
        out, attn = F_pool.attention_pooling(feats, gate, batch, num_graphs, mask=mask, return_attention=True)
        out = out.flatten(-2) if self.concat else out.mean(-2)
        if return_attention:
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


def _check_k_ratio(k: int | None, ratio: float | None) -> None:
    if (k is None) == (ratio is None):
        raise ValueError(f"Pass exactly one of 'k' and 'ratio' (got k={k!r}, ratio={ratio!r})")
    if k is not None:
        check_positive_int(k, "k")
    elif not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"Expected 'ratio' in (0, 1] (got {ratio!r})")


class TopKPooling(nn.Module):
    r"""Top-k pooling of Gao & Ji, `"Graph U-Nets" <https://arxiv.org/abs/1905.05178>`_ (and
    Cangea et al.), keeping a fixed number of nodes per graph so shapes stay static.

    .. math::
        \mathbf{y} = \tanh\Big(\frac{\mathbf{X}\mathbf{p}}{\lVert \mathbf{p} \rVert}\Big), \quad
        \mathbf{i} = \operatorname{top}_k(\mathbf{y}), \quad
        \mathbf{X}' = \big(\mathbf{X} \odot \mathbf{y}\big)_{\mathbf{i}}

    Parameterised as PyG's ``TopKPooling`` (``weight`` of shape ``(1, F)``). Returns a
    :class:`graphvision.functional.TopKOutput` ``(x (B, k, F), index (B, k), mask (B, k), score
    (B, k))``. For equal-size graphs (``(B, N, F)``) every mask entry is ``True``; padded graphs
    pass ``mask``; flat graphs of different sizes pass ``batch``, ``num_graphs`` and
    ``max_num_nodes`` and get padding slots with ``mask=False``. ``ratio`` keeps
    ``ceil(ratio * N)`` nodes of the (padded) size ``N``. See
    :func:`graphvision.functional.topk_pool`.

    Args:
        in_channels: Features per node :math:`F`.
        k: Nodes kept per graph.
        ratio: Alternatively, the fraction of nodes kept.
        nonlinearity: ``"tanh"``, ``"sigmoid"`` or ``"none"``.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(B, N, F)`, or flat :math:`(N, F)` with ``batch``
        - output: x :math:`(B, k, F)`; index, mask, score :math:`(B, k)`

    Example:
        >>> pool = graphvision.nn.TopKPooling(16, ratio=0.25)
        >>> out = pool(torch.randn(2, 64, 16))
        >>> out.x.shape, out.index.shape
        (torch.Size([2, 16, 16]), torch.Size([2, 16]))
    """

    _capabilities = {**_CAPS, "fused_kernel": False}

    def __init__(
        self,
        in_channels: int,
        k: int | None = None,
        ratio: float | None = None,
        nonlinearity: str = "tanh",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        _check_k_ratio(k, ratio)
        self.k, self.ratio = k, ratio
        if nonlinearity not in F_pool._NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; expected one of {F_pool._NONLINEARITIES}")
        self.nonlinearity = nonlinearity
        self.weight = nn.Parameter(torch.empty(1, in_channels, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform :math:`\\pm 1/\\sqrt{F}` projection vector (PyG)."""
        bound = 1.0 / math.sqrt(self.in_channels)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)

    def forward(
        self,
        x: Tensor,
        batch: Tensor | None = None,
        num_graphs: int | None = None,
        *,
        mask: Tensor | None = None,
        max_num_nodes: int | None = None,
    ) -> F_pool.TopKOutput:
        """Select the top-k nodes of each graph.

        Args:
            x: ``(B, N, F)`` or flat ``(N, F)``.
            batch: ``(N,)`` sorted graph ids (flat ``x``).
            num_graphs: Number of graphs (flat ``x``).
            mask: ``(B, N)`` bool real nodes (batched ``x``).
            max_num_nodes: Padded size per graph (flat ``x``).

        Returns:
            ``TopKOutput(x, index, mask, score)``.
        """
        return F_pool.topk_pool(
            x,
            self.weight.view(-1),
            self.k,
            self.ratio,
            batch=batch,
            num_graphs=num_graphs,
            mask=mask,
            max_num_nodes=max_num_nodes,
            nonlinearity=self.nonlinearity,
        )

    def extra_repr(self) -> str:
        sel = f"k={self.k}" if self.k is not None else f"ratio={self.ratio}"
        s = f"{self.in_channels}, {sel}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


class SAGPooling(nn.Module):
    r"""Self-attention graph pooling of Lee et al., `"Self-Attention Graph Pooling"
    <https://arxiv.org/abs/1904.08082>`_: node scores from a graph convolution, then top-k.

    .. math::
        \mathbf{y} = \tanh\big(\mathrm{GNN}(\mathbf{X}, \mathbf{A})\big), \quad
        \mathbf{i} = \operatorname{top}_k(\mathbf{y}), \quad
        \mathbf{X}' = \big(\mathbf{X} \odot \mathbf{y}\big)_{\mathbf{i}}

    The GNN is a one-channel :class:`GCNConv` (as in the paper; PyG defaults to ``GraphConv``)
    unless ``gnn`` is given. It accepts every graph layout of the convolutions (one graph, a graph
    shared by a ``(B, N, F)`` batch, per-sample graphs). Same static-shape selection as
    :class:`TopKPooling`; see :func:`graphvision.functional.sag_pool`.

    Args:
        in_channels: Features per node :math:`F`.
        k: Nodes kept per graph.
        ratio: Alternatively, the fraction of nodes kept.
        gnn: Optional scoring module called as ``gnn(x, edge_index, edge_weight, batch=...)``
            returning one score per node.
        nonlinearity: ``"tanh"``, ``"sigmoid"`` or ``"none"``.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(B, N, F)`, or flat :math:`(N, F)` with ``batch``
        - edge_index: :math:`(2, E)` (see :class:`GCNConv` for the layouts)
        - output: x :math:`(B, k, F)`; index, mask, score :math:`(B, k)`

    Example:
        >>> pool = graphvision.nn.SAGPooling(16, k=2)
        >>> edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
        >>> out = pool(torch.randn(3, 4, 16), edge_index)
        >>> out.x.shape, out.mask.shape
        (torch.Size([3, 2, 16]), torch.Size([3, 2]))
    """

    _capabilities = {**_CAPS, "edge_weight": True, "fused_kernel": "spmm"}

    def __init__(
        self,
        in_channels: int,
        k: int | None = None,
        ratio: float | None = None,
        gnn: nn.Module | None = None,
        nonlinearity: str = "tanh",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        _check_k_ratio(k, ratio)
        self.k, self.ratio = k, ratio
        if nonlinearity not in F_pool._NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; expected one of {F_pool._NONLINEARITIES}")
        self.nonlinearity = nonlinearity
        self.gnn = gnn if gnn is not None else GCNConv(in_channels, 1, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the scoring GNN."""
        if hasattr(self.gnn, "reset_parameters"):
            self.gnn.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: GraphLike,
        edge_weight: WeightLike = None,
        *,
        batch: Tensor | None = None,
        num_graphs: int | None = None,
        mask: Tensor | None = None,
        max_num_nodes: int | None = None,
    ) -> F_pool.TopKOutput:
        """Score the nodes with the GNN and select the top-k of each graph.

        Args:
            x: ``(B, N, F)`` or flat ``(N, F)``.
            edge_index: ``(2, E)``, ``GraphStructure``, or a list of ``B`` per-sample graphs.
            edge_weight: Optional ``(E,)``.
            batch: Flat ``x``: ``(N,)`` sorted graph ids. Batched ``x``: not used for pooling
                (it marks an offset ``edge_index``, as for the convolutions).
            num_graphs: Number of graphs (flat ``x``).
            mask: ``(B, N)`` bool real nodes (batched ``x``).
            max_num_nodes: Padded size per graph (flat ``x``).

        Returns:
            ``TopKOutput(x, index, mask, score)``.
        """
        score = self.gnn(x, edge_index, edge_weight, batch=batch if x.dim() == 3 else None)
        return F_pool.sag_pool(
            x,
            score,
            self.k,
            self.ratio,
            batch=None if x.dim() == 3 else batch,
            num_graphs=num_graphs,
            mask=mask,
            max_num_nodes=max_num_nodes,
            nonlinearity=self.nonlinearity,
        )

    def extra_repr(self) -> str:
        sel = f"k={self.k}" if self.k is not None else f"ratio={self.ratio}"
        s = f"{self.in_channels}, {sel}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s
