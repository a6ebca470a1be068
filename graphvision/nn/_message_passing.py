r"""``MessagePassing``: the base class for writing a custom graph layer, with PyG's interface.

A subclass implements :meth:`~MessagePassing.message` (and optionally
:meth:`~MessagePassing.aggregate` and :meth:`~MessagePassing.update`) and calls
:meth:`~MessagePassing.propagate` from ``forward``, exactly as with
``torch_geometric.nn.MessagePassing``: the same method names and arguments, the same ``_i`` /
``_j`` suffix convention, the same ``aggr`` / ``flow`` / ``node_dim`` options. A layer body written
for PyG runs unchanged.

What differs is underneath. The graph is resolved once per call to a
:class:`~graphvision.GraphStructure` (the caller's, a converter's, or one wrapped around a raw
``edge_index`` after one validation) and the messages are built in the order of its cached
target-sorted CSR, so every aggregation is a contiguous segment reduction (no atomics, no sort
per call when a structure is reused).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import Tensor, nn

from graphvision import ops as _ops
from graphvision._checks import check_choice, check_same_device
from graphvision.ops._dispatch import resolve_backend
from graphvision.ops._api import as_structure
from graphvision.structure import GraphStructure, row_index
from graphvision.typing import Adjacency

__all__ = ["MessagePassing"]

#: Accepted values of ``aggr`` (``"add"`` is PyG's alias of ``"sum"``).
AGGRS = ("sum", "add", "mean", "max", "min")
FLOWS = ("source_to_target", "target_to_source")

#: Arguments that :meth:`MessagePassing.propagate` provides itself (PyG's ``special_args``).
SPECIAL_ARGS = frozenset(
    {"edge_index", "adj_t", "edge_index_i", "edge_index_j", "size", "size_i", "size_j", "ptr", "index", "dim_size"}
)

_EMPTY = inspect.Parameter.empty


def _params(fn: Any, skip: int) -> tuple[tuple[str, Any], ...]:
    """``(name, default)`` of a method's parameters after the first ``skip`` (``self`` excluded)."""
    ps = [p for p in inspect.signature(fn).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return tuple((p.name, p.default) for p in ps[skip:])


def _node_dim(t: Tensor, node_dim: int) -> int:
    """``node_dim`` as a non-negative dimension of ``t`` (dimension 0 of a 1-D tensor)."""
    d = t.dim()
    if node_dim >= 0:
        return node_dim if node_dim < d else 0
    return d + node_dim if d + node_dim >= 0 else 0


class MessagePassing(nn.Module):
    r"""Base class for message-passing layers, with the interface of PyG's ``MessagePassing``.

    .. math::
        \mathbf{x}_i' = \gamma_{\mathbf{\Theta}}\Big(\mathbf{x}_i,\,
        \bigoplus_{j \in \mathcal{N}(i)} \phi_{\mathbf{\Theta}}
        (\mathbf{x}_i, \mathbf{x}_j, \mathbf{e}_{j,i})\Big)

    with :math:`\phi` = :meth:`message`, :math:`\bigoplus` = :meth:`aggregate` (``aggr``) and
    :math:`\gamma` = :meth:`update` (`Gilmer et al. <https://arxiv.org/abs/1704.01212>`_).

    A subclass calls ``self.propagate(edge_index, x=..., **kwargs)`` in ``forward``. Every
    argument that :meth:`message`, :meth:`aggregate` or :meth:`update` names is looked up in the
    keyword arguments of :meth:`propagate`: ``x_j`` is ``x`` gathered at each edge's source
    (``x[edge_index[0]]``), ``x_i`` at its target (``x[edge_index[1]]``), along ``node_dim``; a
    pair ``x=(x_src, x_dst)`` gives ``x_j`` from ``x_src`` and ``x_i`` from ``x_dst`` (bipartite; with
    ``flow="target_to_source"`` too, as in PyG, so ``x_src`` then has the nodes of ``edge_index[1]``);
    other names are passed as they are. ``edge_index``, ``edge_index_i``, ``edge_index_j``,
    ``index`` (the target of each edge), ``ptr``, ``size``, ``size_i``, ``size_j`` and
    ``dim_size`` are provided by :meth:`propagate` (PyG's ``special_args``).

    **Edge order.** ``edge_index`` may be a ``(2, E)`` tensor, a
    :class:`~graphvision.GraphStructure` or a converter result carrying ``.graph``. It is resolved
    once per call; the messages are built in the structure's target-sorted (CSR) order and
    reduced over contiguous segments. When the caller's edges are not target-sorted (graphvision's
    converters always are), the per-edge inputs named in :attr:`edge_args` (``edge_weight``,
    ``edge_attr``, ``edge_type`` by default) are permuted into that order, and ``edge_index``,
    ``index``, ``ptr`` given to :meth:`message` describe it, so a message sees one consistent
    order. If another keyword argument is a tensor with ``E`` rows (it could be per-edge, or
    per-node when ``N == E``), nothing is guessed: the messages are built in the caller's edge
    order, exactly as in PyG, and permuted before the reduction. Per-edge values a layer wants to
    return (attention weights) are best computed by :meth:`edge_updater`, which always keeps the
    caller's order. The result of :meth:`propagate` is per node and does not depend on the order.

    **Batches.** With ``node_dim=-2`` (the default), ``x`` may be ``(N, F)`` or ``(B, N, F)``
    with one graph shared by the ``B`` samples, as in PyG: messages are then ``(B, E, F)``.

    Not implemented from PyG: ``Aggregation`` modules or lists as ``aggr``, ``SparseTensor``
    input, ``message_and_aggregate``, ``decomposed_layers``, explain masks and the
    propagate/message hooks.

    Args:
        aggr: ``"sum"`` (alias ``"add"``), ``"mean"``, ``"max"`` or ``"min"``; nodes without
            incoming messages get 0. ``None`` when the subclass overrides :meth:`aggregate`.
        flow: ``"source_to_target"`` (messages from ``edge_index[0]`` to ``edge_index[1]``) or
            ``"target_to_source"``.
        node_dim: The dimension of the node features that indexes the nodes (PyG's default -2).

    Shape:
        - x (any node-level keyword of :meth:`propagate`): :math:`(N, F)` or :math:`(B, N, F)`
          (one shared graph), or a pair for bipartite graphs
        - edge_index: :math:`(2, E)` ``torch.long`` / ``torch.int32``, or a
          :class:`~graphvision.GraphStructure`
        - per-edge keywords (``edge_weight``, ``edge_attr``): :math:`(E,)` or :math:`(E, D)`
        - output: what :meth:`update` returns; by default :math:`(N, F_{msg})` or
          :math:`(B, N, F_{msg})`

    Example:
        >>> class MeanNeighbours(graphvision.nn.MessagePassing):
        ...     def __init__(self):
        ...         super().__init__(aggr="mean")
        ...     def forward(self, x, edge_index, edge_weight):
        ...         return self.propagate(edge_index, x=x, edge_weight=edge_weight)
        ...     def message(self, x_j, edge_weight):
        ...         return edge_weight.view(-1, 1) * x_j
        >>> ei = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 2]])
        >>> MeanNeighbours()(torch.eye(3), ei, torch.ones(4))
        tensor([[0.0000, 0.0000, 1.0000],
                [1.0000, 0.0000, 0.0000],
                [0.5000, 0.5000, 0.0000]])
    """

    #: Keyword arguments of :meth:`propagate` that are per edge (permuted with the edges).
    edge_args: tuple[str, ...] = ("edge_weight", "edge_attr", "edge_type")

    #: Methods the API reference lists (read by ``docs/_ext/gv_apigen.py``).
    _doc_members = ("propagate", "message", "aggregate", "update", "edge_updater", "edge_update")

    _capabilities = {
        "batched": True,
        "per_sample_graph": False,
        "edge_weight": "n/a",
        "fused_kernel": False,
        "compile_safe": True,
        "deterministic": True,
    }

    def __init__(self, aggr: str | None = "sum", *, flow: str = "source_to_target", node_dim: int = -2) -> None:
        super().__init__()
        if aggr is not None:
            if not isinstance(aggr, str):
                raise TypeError(
                    f"Expected 'aggr' to be one of {AGGRS} or None (got {type(aggr).__name__}); "
                    "Aggregation modules and lists of aggregations are not supported"
                )
            check_choice(aggr, AGGRS, "aggr")
        check_choice(flow, FLOWS, "flow")
        if isinstance(node_dim, bool) or not isinstance(node_dim, int):
            raise TypeError(f"Expected 'node_dim' to be an int (got {type(node_dim).__name__})")
        self.aggr = aggr
        self.flow = flow
        self.node_dim = node_dim
        cls = type(self)
        if aggr is None and cls.aggregate is MessagePassing.aggregate:
            raise ValueError(f"{cls.__name__}: aggr=None needs an aggregate() override")
        # Signatures, read once (plain tuples: nothing is inspected while torch.compile traces).
        self._msg_params = _params(self.message, 0)
        self._aggr_params = _params(self.aggregate, 1)
        self._update_params = _params(self.update, 1)
        self._edge_params = _params(self.edge_update, 0)
        self._default_aggregate = cls.aggregate is MessagePassing.aggregate
        self._names = frozenset(n for n, _ in self._msg_params + self._aggr_params + self._update_params)
        # The default message x_j with sum/mean is a sparse-dense product (no (E, F) messages),
        # when update() needs no gathered or special argument.
        self._spmm_ok = (
            cls.message is MessagePassing.message
            and self._default_aggregate
            and flow == "source_to_target"
            and aggr in ("sum", "add", "mean")
            and not any(n[-2:] in ("_i", "_j") or n in SPECIAL_ARGS for n, _ in self._update_params)
        )

    def extra_repr(self) -> str:
        parts = [f"aggr={self.aggr!r}"]
        if self.flow != "source_to_target":
            parts.append(f"flow={self.flow!r}")
        if self.node_dim != -2:
            parts.append(f"node_dim={self.node_dim}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ the graph
    def _structure(self, edge_index: Any, size: list[int | None]) -> GraphStructure:
        """Resolve ``edge_index`` once (``size`` = nodes of ``edge_index[0]``, ``edge_index[1]``)."""
        g: GraphStructure | None = None
        if isinstance(edge_index, GraphStructure):
            g = edge_index
        elif isinstance(edge_index, Tensor):
            if edge_index.layout != torch.strided:
                raise TypeError(
                    f"Expected 'edge_index' to be a dense (2, E) tensor or a GraphStructure (got a {edge_index.layout} "
                    "tensor); convert a sparse adjacency with GraphStructure.from_csr or .indices()"
                )
            carried = getattr(edge_index, "graph", None)
            if isinstance(carried, GraphStructure):
                ce = carried.edge_index  # a kNN/radius result: its structure, if it still describes this memory
                if ce.data_ptr() == edge_index.data_ptr() and ce.shape == edge_index.shape and ce.stride() == edge_index.stride():
                    g = carried
        elif isinstance(getattr(edge_index, "graph", None), GraphStructure):
            g = edge_index.graph  # a converter result
        else:
            raise TypeError(
                "Expected 'edge_index' to be a (2, E) tensor, a GraphStructure or a converter result "
                f"with .graph (got {type(edge_index).__name__})"
            )
        if g is not None:
            for k, (want, name) in enumerate(((g.num_src_nodes, "num_src_nodes"), (g.num_nodes, "num_nodes"))):
                if size[k] is not None and size[k] != want:
                    raise ValueError(
                        f"Expected {size[k]} nodes for edge_index[{k}] (from 'size' or the node features) "
                        f"to match the GraphStructure's {name}={want}"
                    )
            return g
        assert isinstance(edge_index, Tensor)
        s0, s1 = size
        if s0 is None or s1 is None:
            if s0 is None and s1 is None:
                # nothing tells the number of nodes: read it from the indices (PyG infers it the same way)
                s0 = s1 = int(edge_index.max()) + 1 if edge_index.numel() > 0 and edge_index.dim() == 2 else 0
            s0 = s1 if s0 is None else s0
            s1 = s0 if s1 is None else s1
        return as_structure(edge_index, s1, s0)

    def _sizes(self, kwargs: dict[str, Any], names: set[str], size: Any) -> list[int | None]:
        """Node counts of ``edge_index[0]`` / ``[1]`` from ``size`` and the suffixed node data."""
        if size is None:
            sz: list[int | None] = [None, None]
        else:
            if not isinstance(size, (tuple, list)) or len(size) != 2:
                raise ValueError(f"Expected 'size' to be None or a pair (N_src, N_dst) (got {size!r})")
            sz = [None if s is None else int(s) for s in size]
        i, j = (1, 0) if self.flow == "source_to_target" else (0, 1)
        for name in names:
            suffix = name[-2:]
            if suffix not in ("_i", "_j"):
                continue
            dim = j if suffix == "_j" else i
            data = kwargs.get(name[:-2])
            if isinstance(data, (tuple, list)):
                if len(data) != 2:
                    raise ValueError(f"Expected '{name[:-2]}' to be a tensor or a pair (src, dst) (got {len(data)} items)")
                pairs = ((j, data[0]), (i, data[1]))
            else:
                pairs = ((dim, data),)
            for k, t in pairs:
                if not isinstance(t, Tensor):
                    continue
                n = t.size(_node_dim(t, self.node_dim))
                if sz[k] is None:
                    sz[k] = n
                elif sz[k] != n:
                    raise ValueError(
                        f"Expected '{name[:-2]}' with {sz[k]} nodes in dimension {self.node_dim} for "
                        f"edge_index[{k}] (got shape {tuple(t.shape)})"
                    )
        return sz

    # ------------------------------------------------------------------ propagation
    def _collect(
        self,
        params: tuple[tuple[str, Any], ...],
        kwargs: dict[str, Any],
        special: dict[str, Any],
        idx: dict[str, Tensor],
        edge_perm: Tensor | None,
        where: str,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, default in params:
            if name in SPECIAL_ARGS:
                out[name] = special[name] if name in special else default
                continue
            suffix = name[-2:]
            if suffix in ("_i", "_j") and name[:-2] in kwargs:
                data = kwargs[name[:-2]]
                if isinstance(data, (tuple, list)):
                    data = data[0 if suffix == "_j" else 1]  # (senders, receivers), as PyG
                if isinstance(data, Tensor):
                    data = data.index_select(_node_dim(data, self.node_dim), idx[suffix])
                out[name] = data
            elif name in kwargs:
                v = kwargs[name]
                if edge_perm is not None and name in self.edge_args and isinstance(v, Tensor) and v.dim() > 0:
                    v = v.index_select(0, edge_perm)
                out[name] = v
            elif default is not _EMPTY:
                out[name] = default
            else:
                base = name[:-2] if suffix in ("_i", "_j") else name
                raise TypeError(
                    f"{type(self).__name__}.{where}() takes '{name}', so propagate() needs the keyword "
                    f"argument '{base}' (got {sorted(kwargs)})"
                )
        return out

    def propagate(self, edge_index: Adjacency, size: tuple[int, int] | None = None, **kwargs: Any) -> Any:
        """Build the messages, aggregate them per node and update: the layer's main call.

        Args:
            edge_index: ``(2, E)`` edges ``source -> target``, a
                :class:`~graphvision.GraphStructure` (its cached CSR is reused) or a converter
                result carrying ``.graph``.
            size: ``(N_src, N_dst)``, the node counts of ``edge_index[0]`` and ``edge_index[1]``;
                inferred from the node features when ``None``.
            **kwargs: The data that :meth:`message`, :meth:`aggregate` and :meth:`update` name.

        Returns:
            The output of :meth:`update`.

        Shape:
            - edge_index: :math:`(2, E)`
            - output: :math:`(N, F_{msg})` or :math:`(B, N, F_{msg})` by default

        Example:
            >>> conv = graphvision.nn.MessagePassing(aggr="max")
            >>> x = torch.tensor([[1.0], [5.0], [3.0]])
            >>> conv.propagate(torch.tensor([[0, 1, 2], [2, 2, 0]]), x=x).flatten().tolist()
            [3.0, 0.0, 5.0]
        """
        names = self._names
        sz = self._sizes(kwargs, names, size)
        g = self._structure(edge_index, sz)
        for k, v in kwargs.items():
            for t in v if isinstance(v, (tuple, list)) else (v,):
                if isinstance(t, Tensor):
                    check_same_device("edge_index", g.edge_index, k, t)
        s2t = self.flow == "source_to_target"
        sz = [g.num_src_nodes, g.num_nodes]
        n_out = g.num_nodes if s2t else g.num_src_nodes
        e = g.num_edges

        if self._spmm_ok:
            x = kwargs.get("x")
            x = x[0] if isinstance(x, (tuple, list)) else x
            if isinstance(x, Tensor) and x.dim() in (2, 3) and _node_dim(x, self.node_dim) == x.dim() - 2:
                out = self._spmm(g, x)
                return self.update(out, **self._collect(self._update_params, kwargs, {}, {}, None, "update"))

        rowptr, col, perm = g.csr()
        if s2t:
            identity = g.identity_perm
            edge_perm = perm
            row = g.derived("pyg_row_index", lambda: row_index(rowptr, e))
            j_idx, i_idx = col, row
        else:
            rowptr, col_t, perm_t = g.csr_t()
            identity = False
            edge_perm = perm.index_select(0, perm_t)
            row_t = g.derived("pyg_row_index_t", lambda: row_index(rowptr, e))
            j_idx, i_idx = col_t, row_t
        # Sorted order unless a tensor with E rows is passed as is (not as *_i / *_j node data)
        # without being a declared edge argument: it could be per edge or per node (N == E).
        in_order = identity or not any(
            k in names and k not in self.edge_args and isinstance(v, Tensor) and v.dim() > 0 and v.size(0) == e
            for k, v in kwargs.items()
        )
        ei = g.edge_index
        if in_order:
            msg_perm = None
            kw_perm = None if identity else edge_perm
            ptr: Tensor | None = rowptr
            sorted_ei = None
        else:
            msg_perm = edge_perm
            kw_perm = None
            j_idx, i_idx = (ei[0], ei[1]) if s2t else (ei[1], ei[0])
            ptr = None
        idx = {"_j": j_idx, "_i": i_idx}
        special: dict[str, Any] = {
            "edge_index_i": i_idx, "edge_index_j": j_idx, "index": i_idx, "ptr": ptr,
            "size": sz, "size_i": sz[1] if s2t else sz[0], "size_j": sz[0] if s2t else sz[1],
            "dim_size": n_out, "adj_t": None,
        }
        if "edge_index" in names:
            if in_order and not identity:
                sorted_ei = torch.stack([j_idx, i_idx]) if s2t else torch.stack([i_idx, j_idx])
                special["edge_index"] = sorted_ei
            else:
                special["edge_index"] = ei
        msg = self.message(**self._collect(self._msg_params, kwargs, special, idx, kw_perm, "message"))
        if self._default_aggregate:
            if msg_perm is not None:
                msg = msg.index_select(_node_dim(msg, self.node_dim), msg_perm)
            out = self._segment(msg, rowptr)
        else:
            out = self.aggregate(msg, **self._collect(self._aggr_params, kwargs, special, idx, kw_perm, "aggregate"))
        return self.update(out, **self._collect(self._update_params, kwargs, special, idx, kw_perm, "update"))

    def _reduce_name(self) -> str:
        assert self.aggr is not None
        return "sum" if self.aggr == "add" else self.aggr

    def _segment(self, inputs: Tensor, ptr: Tensor) -> Tensor:
        """Reduce ``inputs`` (sorted along ``node_dim``) over the CSR segments ``ptr``."""
        d = _node_dim(inputs, self.node_dim)
        moved = inputs.movedim(d, 0)
        rest = moved.shape[1:]
        flat = moved.reshape(moved.size(0), math.prod(rest)).contiguous()
        n = ptr.numel() - 1
        reduce = self._reduce_name()
        name = resolve_backend("segment_reduce_csr", inputs.device, None)
        if name == "torch" and reduce in ("sum", "mean") and flat.dtype not in (torch.float16, torch.bfloat16):
            # The torch backend's own kernel (torch.segment_reduce) with its native autograd, and
            # the mean divided per node: forward+backward measured 13 vs 16 ms through the custom
            # op (CPU, E=32k, F=64). Not for max/min: torch.segment_reduce's backward gives the
            # whole gradient to every tied entry for some values (torch 2.13), so those go
            # through the custom op (gradient to the first extreme).
            out = torch.segment_reduce(flat, "sum", offsets=ptr, axis=0, unsafe=True)
            if reduce == "mean":
                out = out / (ptr[1:] - ptr[:-1]).clamp(min=1).view(n, 1).to(out.dtype)
        else:
            out, _ = torch.ops.graphvision.segment_reduce(ptr, flat, reduce, name)
        return out.view((n,) + tuple(rest)).movedim(0, d)

    def _spmm(self, g: GraphStructure, x: Tensor) -> Tensor:
        """Default message ``x_j`` with sum/mean: a sparse-dense product, no ``(E, F)`` messages."""
        if x.dim() == 3:
            b, n, f = x.shape
            out = _ops.spmm(g, None, x.transpose(0, 1), g.num_nodes).transpose(0, 1)
        else:
            out = _ops.spmm(g, None, x, g.num_nodes)
        if self.aggr == "mean":
            deg = g.in_degree().clamp(min=1).to(out.dtype)
            out = out / deg.view(-1, 1)
        return out

    def message(self, x_j: Tensor) -> Tensor:
        r"""The message of each edge :math:`j \to i`: :math:`\phi_{\mathbf{\Theta}}` (default ``x_j``).

        Override it with any arguments: ``*_j`` / ``*_i`` are node data gathered at each edge's
        source / target, other names are keyword arguments of :meth:`propagate`.

        Args:
            x_j: ``x`` at the source of each edge.

        Returns:
            The messages, one per edge along ``node_dim``.

        Shape:
            - x_j: :math:`(E, F)` or :math:`(B, E, F)`
            - output: :math:`(E, F_{msg})` or :math:`(B, E, F_{msg})`

        Example:
            >>> graphvision.nn.MessagePassing().message(torch.ones(4, 2)).shape
            torch.Size([4, 2])
        """
        return x_j

    def aggregate(self, inputs: Tensor, index: Tensor, ptr: Tensor | None = None, dim_size: int | None = None) -> Tensor:
        r"""Reduce the messages per target node with ``aggr``: :math:`\bigoplus_{j \in \mathcal{N}(i)}`.

        :meth:`propagate` reduces the default way without calling this method (a segment
        reduction over the structure's CSR). An override is called with the messages and
        ``index`` in the same edge order; ``ptr`` is the CSR row pointer when that order is
        target-sorted (else ``None``).

        Args:
            inputs: The messages.
            index: Target node of each message.
            ptr: CSR row pointer of ``index`` when ``inputs`` is sorted by target, else ``None``.
            dim_size: Number of output nodes ``N``.

        Returns:
            The per-node aggregate; nodes without messages get 0.

        Shape:
            - inputs: :math:`(E, F)` or :math:`(B, E, F)`
            - index: :math:`(E,)`
            - ptr: :math:`(N + 1,)`
            - output: :math:`(N, F)` or :math:`(B, N, F)`

        Example:
            >>> conv = graphvision.nn.MessagePassing(aggr="sum")
            >>> conv.aggregate(torch.ones(3, 1), torch.tensor([0, 0, 2]), dim_size=3).flatten().tolist()
            [2.0, 0.0, 1.0]
        """
        if self.aggr is None:
            raise NotImplementedError(f"{type(self).__name__}: aggr=None, so aggregate() must be overridden")
        if ptr is not None:
            return self._segment(inputs, ptr)
        d = _node_dim(inputs, self.node_dim)
        moved = inputs.movedim(d, 0)
        out = _ops.scatter(moved, index, dim_size, self._reduce_name())
        return out.movedim(0, d)

    def update(self, inputs: Tensor) -> Tensor:
        r"""Update each node from its aggregate: :math:`\gamma_{\mathbf{\Theta}}` (default: identity).

        Override it with more arguments named as in :meth:`message` (``x``, ``x_i``, ...).

        Args:
            inputs: The output of :meth:`aggregate`.

        Returns:
            The layer's output.

        Shape:
            - inputs: :math:`(N, F)` or :math:`(B, N, F)`
            - output: any

        Example:
            >>> graphvision.nn.MessagePassing().update(torch.ones(3, 2)).shape
            torch.Size([3, 2])
        """
        return inputs

    # ------------------------------------------------------------------ edge-level updates
    def edge_updater(self, edge_index: Adjacency, size: tuple[int, int] | None = None, **kwargs: Any) -> Any:
        """Compute per-edge values with :meth:`edge_update`, in the caller's edge order (PyG's ``edge_updater``).

        Args:
            edge_index: ``(2, E)`` edges, a :class:`~graphvision.GraphStructure` or a converter
                result carrying ``.graph``.
            size: ``(N_src, N_dst)``, inferred from the node features when ``None``.
            **kwargs: The data that :meth:`edge_update` names (``*_i`` / ``*_j`` as in :meth:`message`).

        Returns:
            The output of :meth:`edge_update`, one row per edge of ``edge_index``, in its order.

        Shape:
            - edge_index: :math:`(2, E)`
            - output: :math:`(E, *)`

        Example:
            >>> class Dot(graphvision.nn.MessagePassing):
            ...     def edge_update(self, x_i, x_j):
            ...         return (x_i * x_j).sum(-1)
            >>> Dot().edge_updater(torch.tensor([[0, 1], [1, 2]]), x=torch.eye(3)).tolist()
            [0.0, 0.0]
        """
        names = {n for n, _ in self._edge_params}
        sz = self._sizes(kwargs, names, size)
        g = self._structure(edge_index, sz)
        ei = g.edge_index
        s2t = self.flow == "source_to_target"
        sz = [g.num_src_nodes, g.num_nodes]
        j_idx, i_idx = (ei[0], ei[1]) if s2t else (ei[1], ei[0])
        special: dict[str, Any] = {
            "edge_index": ei, "edge_index_i": i_idx, "edge_index_j": j_idx, "index": i_idx, "ptr": None,
            "size": sz, "size_i": sz[1] if s2t else sz[0], "size_j": sz[0] if s2t else sz[1],
            "dim_size": g.num_nodes if s2t else g.num_src_nodes, "adj_t": None,
        }
        return self.edge_update(**self._collect(self._edge_params, kwargs, special, {"_j": j_idx, "_i": i_idx}, None, "edge_update"))

    def edge_update(self) -> Tensor:
        """Per-edge computation called by :meth:`edge_updater`; subclasses override it.

        Returns:
            Per-edge values.

        Shape:
            - output: :math:`(E, *)`

        Example:
            >>> graphvision.nn.MessagePassing().edge_update()
            Traceback (most recent call last):
            ...
            NotImplementedError: MessagePassing.edge_update() is not implemented; override it to use edge_updater()
        """
        raise NotImplementedError(f"{type(self).__name__}.edge_update() is not implemented; override it to use edge_updater()")
