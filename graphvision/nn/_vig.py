r"""Vision-GNN layers: MRConv, EdgeConv, DynamicEdgeConv, and ViG's Grapher and FFN blocks.

``EdgeConv`` / ``DynamicEdgeConv`` follow PyG (argument names, defaults, ``nn.*`` state_dict keys,
outputs). ``Grapher`` / ``FFN`` follow `Vision GNN <https://arxiv.org/abs/2206.00272>`_ and keep
its module names (``fc1``, ``graph_conv.gconv.nn``, ``fc2``), so a ViG block's state_dict loads
into them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from graphvision._checks import check_choice, check_positive_int, check_shape
from graphvision.functional._graph_knn import DilatedKNN, _dilated_knn_structure
from graphvision.functional._vig import (
    AGGREGATIONS,
    _dense_table,
    _interleave,
    _max_relative,
    dynamic_edge_conv,
    edge_conv,
    mr_conv,
    relative_position_term,
    to_image,
    to_nodes,
)
from graphvision.typing import Adjacency

__all__ = ["MRConv", "EdgeConv", "DynamicEdgeConv", "Grapher", "FFN"]

_CAPS = {
    "batched": True,
    "per_sample_graph": True,
    "edge_weight": False,
    "fused_kernel": False,
    "compile_safe": True,
    "deterministic": True,
}


class MRConv(nn.Module):
    r"""Max-relative graph convolution of `Vision GNN <https://arxiv.org/abs/2206.00272>`_.

    .. math::
        \mathbf{x}'_i = h_{\mathbf{\Theta}}\Big(\mathbf{x}_i \,\Big\Vert\,
        \max_{j \in \mathcal{N}(i)} (\mathbf{x}_j - \mathbf{x}_i)\Big)

    See :func:`graphvision.functional.mr_conv`.

    Args:
        nn: Network :math:`h_{\mathbf{\Theta}}` mapping ``(*, 2 F)`` to ``(*, F_out)``
            (e.g. ``Sequential(Linear(2F, F_out), GELU())``).

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - edge_index: :math:`(2, E)`, a structure over :math:`N` or :math:`B N` nodes, or a
          :func:`~graphvision.functional.knn_graph` result
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> conv = graphvision.nn.MRConv(torch.nn.Linear(16, 32))
        >>> conv
        MRConv(nn=Linear(in_features=16, out_features=32, bias=True))
        >>> x = torch.randn(2, 49, 8)
        >>> conv(x, graphvision.functional.knn_graph(x, k=9, loop=True)).shape
        torch.Size([2, 49, 32])
    """

    _capabilities = _CAPS

    def __init__(self, nn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.nn = nn
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise ``nn``."""
        _reset_children(self.nn)

    def forward(self, x: Tensor, edge_index: Adjacency) -> Tensor:
        """Convolve ``x`` over ``edge_index`` (see the class docstring)."""
        return mr_conv(x, edge_index, self.nn)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(nn={self.nn})"


def _reset_children(module: object) -> None:
    """PyG's ``reset``: call ``reset_parameters`` on every child module that has one."""
    if isinstance(module, nn.Module):
        for m in module.modules():
            fn = getattr(m, "reset_parameters", None)
            if callable(fn):
                fn()


class EdgeConv(nn.Module):
    r"""Edge convolution of `DGCNN <https://arxiv.org/abs/1801.07829>`_ (PyG's ``EdgeConv``).

    .. math::
        \mathbf{x}'_i = \bigoplus_{j \in \mathcal{N}(i)} h_{\mathbf{\Theta}}(\mathbf{x}_i \,\Vert\,
        \mathbf{x}_j - \mathbf{x}_i)

    Same arguments, defaults, state_dict keys (``nn.*``) and outputs as
    ``torch_geometric.nn.EdgeConv``. See :func:`graphvision.functional.edge_conv` (a leading
    ``Linear`` of ``nn`` runs per node, not per edge).

    Args:
        nn: Network mapping ``(E, 2 F)`` to ``(E, F_out)``.
        aggr: ``"max"``, ``"mean"``, ``"add"`` / ``"sum"`` or ``"min"``.

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)`
        - edge_index: :math:`(2, E)` or a structure over :math:`N` or :math:`B N` nodes
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())
        >>> conv = graphvision.nn.EdgeConv(net)
        >>> conv(torch.randn(5, 4), torch.tensor([[0, 1, 2], [1, 2, 3]])).shape
        torch.Size([5, 16])
    """

    _capabilities = _CAPS

    def __init__(self, nn: Callable[[Tensor], Tensor], aggr: str = "max") -> None:
        super().__init__()
        check_choice(aggr, AGGREGATIONS, "aggr")
        self.nn = nn
        self.aggr = aggr
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise ``nn`` (as PyG)."""
        _reset_children(self.nn)

    def forward(self, x: Tensor, edge_index: Adjacency) -> Tensor:
        """Convolve ``x`` over ``edge_index`` (see the class docstring)."""
        return edge_conv(x, edge_index, self.nn, self.aggr)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(nn={self.nn})"


class DynamicEdgeConv(nn.Module):
    r"""Dynamic edge convolution of `DGCNN <https://arxiv.org/abs/1801.07829>`_ (PyG's ``DynamicEdgeConv``).

    :class:`EdgeConv` over the ``k``-nearest-neighbour graph of ``x`` (the node itself included,
    as PyG), recomputed on every call. Same arguments, defaults and state_dict keys as PyG; no
    ``torch_cluster`` needed. See :func:`graphvision.functional.dynamic_edge_conv`.

    Args:
        nn: Network mapping ``(E, 2 F)`` to ``(E, F_out)``.
        k: Number of nearest neighbours.
        aggr: ``"max"``, ``"mean"``, ``"add"`` / ``"sum"`` or ``"min"``.
        num_workers: Accepted for PyG compatibility (unused: the kNN runs in torch).

    Shape:
        - x: :math:`(N, F)` or :math:`(B, N, F)` (neighbours within each sample)
        - batch: :math:`(N,)`, sorted
        - output: :math:`(N, F_{out})` or :math:`(B, N, F_{out})`

    Example:
        >>> conv = graphvision.nn.DynamicEdgeConv(torch.nn.Linear(6, 8), k=4)
        >>> conv
        DynamicEdgeConv(nn=Linear(in_features=6, out_features=8, bias=True), k=4)
        >>> conv(torch.randn(10, 3)).shape
        torch.Size([10, 8])
    """

    _capabilities = {**_CAPS, "per_sample_graph": False}

    def __init__(self, nn: Callable[[Tensor], Tensor], k: int, aggr: str = "max", num_workers: int = 1) -> None:
        super().__init__()
        check_choice(aggr, AGGREGATIONS, "aggr")
        self.nn = nn
        self.k = check_positive_int(k, "k")
        self.aggr = aggr
        self.num_workers = num_workers
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise ``nn`` (as PyG)."""
        _reset_children(self.nn)

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        """Build the kNN graph of ``x`` and convolve over it."""
        return dynamic_edge_conv(x, self.nn, self.k, batch, self.aggr)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(nn={self.nn}, k={self.k})"


# --------------------------------------------------------------------------------------------
# ViG blocks
# --------------------------------------------------------------------------------------------

_ACTS = ("relu", "gelu", "leakyrelu", "prelu", "hswish", "none")
_NORMS = ("batch", "instance", "none")
CONVS = ("mr", "edge")


def _act(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "leakyrelu": lambda: nn.LeakyReLU(0.2),
        "prelu": nn.PReLU,
        "hswish": nn.Hardswish,
        "none": nn.Identity,
    }[name]()


class _DropPath(nn.Module):
    """Stochastic depth per sample (as timm's ``DropPath``)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.size(0),) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _BasicConv(nn.Sequential):
    """ViG's ``BasicConv``: grouped 1x1 conv, norm, activation (the network of its graph convs)."""

    def __init__(self, cin: int, cout: int, act: str, norm: str, bias: bool, groups: int, **dd: object) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 1, bias=bias, groups=groups, **dd)]
        if norm == "batch":
            layers.append(nn.BatchNorm2d(cout, **dd))
        elif norm == "instance":
            layers.append(nn.InstanceNorm2d(cout, affine=False))
        if act != "none":
            layers.append(_act(act))
        super().__init__(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()


class _GraphConvHolder(nn.Module):
    """Holds the network as ``gconv.nn`` (ViG's module path ``graph_conv.gconv.nn``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.gconv = nn.Module()
        self.gconv.nn = net


class Grapher(nn.Module):
    r"""ViG's Grapher block on a feature map: 1x1 conv, graph conv over a dynamic dilated kNN, 1x1 conv, residual.

    From `Vision GNN <https://arxiv.org/abs/2206.00272>`_:

    .. math::
        Y = \mathrm{DropPath}\big(\mathrm{BN}(W_2\, G(\mathrm{BN}(W_1 X)))\big) + X

    where :math:`G` builds the kNN graph of the :math:`N = H W` nodes of each image (cosine
    distance, the node itself first, every ``dilation``-th of the ``k * dilation`` nearest,
    optionally with ViG's relative position term; see
    :func:`graphvision.functional.knn_graph`) and applies a max-relative (``conv="mr"``, ViG's
    default, :func:`~graphvision.functional.mr_conv`) or edge (``"edge"``) graph convolution whose
    network is a grouped 1x1 conv, a norm and an activation from ``C`` (``2C`` concatenated)
    to ``2C`` channels. The graph is rebuilt on every call from the features after ``fc1``, all
    images at once, and handed to the conv as a fixed-degree table (no edge list sort).

    The parameters have ViG's names (``fc1.0``, ``fc1.1``, ``graph_conv.gconv.nn.0``, ...,
    ``fc2.*``): a ViG ``Grapher`` state_dict with the same options loads with ``strict=True``
    (ViG's ``relative_pos`` parameter excepted: the term is recomputed here for the input size).
    ViG's reduce ratio ``r`` (kNN against a pooled graph) is not implemented.

    Args:
        channels: Number of channels ``C``.
        k: Number of neighbours per node.
        dilation: Dilation of the kNN.
        conv: ``"mr"`` or ``"edge"``.
        act: Activation of the graph conv: ``"gelu"``, ``"relu"``, ``"leakyrelu"``, ``"prelu"``,
            ``"hswish"`` or ``"none"``.
        norm: Norm of the graph conv: ``"batch"``, ``"instance"`` or ``"none"``.
        bias: Bias of the graph conv's 1x1 conv.
        stochastic: Random dilation in training (with probability ``epsilon``).
        epsilon: Probability of a random dilation per training call.
        drop_path: Stochastic depth rate of the residual branch.
        relative_pos: Add ViG's relative position term to the kNN distances (Pyramid ViG).
        groups: Groups of the graph conv's 1x1 conv (ViG uses 4).
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, C, H, W)`

    Example:
        >>> block = graphvision.nn.Grapher(48, k=9, dilation=2)
        >>> block
        Grapher(48, k=9, dilation=2, conv='mr')
        >>> block(torch.randn(2, 48, 7, 7)).shape
        torch.Size([2, 48, 7, 7])
    """

    _capabilities = {**_CAPS, "per_sample_graph": True, "compile_safe": True}

    def __init__(
        self,
        channels: int,
        k: int = 9,
        dilation: int = 1,
        conv: str = "mr",
        act: str = "gelu",
        norm: str = "batch",
        bias: bool = True,
        stochastic: bool = False,
        epsilon: float = 0.2,
        drop_path: float = 0.0,
        relative_pos: bool = False,
        groups: int = 4,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        c = check_positive_int(channels, "channels")
        check_choice(conv, CONVS, "conv")
        check_choice(act, _ACTS, "act")
        check_choice(norm, _NORMS, "norm")
        groups = check_positive_int(groups, "groups")
        if (2 * c) % groups:
            raise ValueError(f"Expected 2 * channels = {2 * c} to be divisible by groups={groups}")
        if not 0.0 <= float(drop_path) < 1.0:
            raise ValueError(f"Expected 'drop_path' in [0, 1) (got {drop_path!r})")
        if not 0.0 <= float(epsilon) <= 1.0:
            raise ValueError(f"Expected 'epsilon' in [0, 1] (got {epsilon!r})")
        if relative_pos and c % 4:
            raise ValueError(f"Expected 'channels' to be a multiple of 4 with relative_pos=True (got {c})")
        dd = {"device": device, "dtype": dtype}
        self.channels = c
        self.k = check_positive_int(k, "k")
        self.dilation = check_positive_int(dilation, "dilation")
        self.conv = conv
        self.stochastic = bool(stochastic)
        self.epsilon = float(epsilon)
        self.relative_pos = bool(relative_pos)
        self.fc1 = nn.Sequential(nn.Conv2d(c, c, 1, **dd), nn.BatchNorm2d(c, **dd))
        self.graph_conv = _GraphConvHolder(_BasicConv(2 * c, 2 * c, act, norm, bias, groups, **dd))
        self.fc2 = nn.Sequential(nn.Conv2d(2 * c, c, 1, **dd), nn.BatchNorm2d(c, **dd))
        self.drop_path = _DropPath(float(drop_path)) if drop_path > 0 else nn.Identity()
        self._rel_cache: tuple[tuple, Tensor] | None = None

    def reset_parameters(self) -> None:
        """Re-initialise every layer."""
        for m in (self.fc1, self.fc2):
            for layer in m:
                layer.reset_parameters()
        self.graph_conv.gconv.nn.reset_parameters()

    def _relative_term(self, h: int, w: int, ref: Tensor) -> Tensor:
        if torch.compiler.is_compiling():  # in the graph: comparing the cache key would specialise h and w
            return relative_position_term(self.channels, h, w, device=ref.device, dtype=ref.dtype)
        key = (h, w, ref.device, ref.dtype)
        if self._rel_cache is None or self._rel_cache[0] != key:
            term = relative_position_term(self.channels, h, w, device=ref.device, dtype=ref.dtype)
            self._rel_cache = (key, term)
        return self._rel_cache[1]

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to a batch of feature maps."""
        check_shape(x, ["B", self.channels, "H", "W"], "x")
        shortcut = x
        x = self.fc1(x)
        b, c, h, w = x.shape
        nodes = to_nodes(x)  # (B, N, C)
        rel = self._relative_term(h, w, x) if self.relative_pos else None
        dilated = DilatedKNN(self.dilation, self.stochastic, self.epsilon, rel)
        g = _dilated_knn_structure(nodes.detach(), self.k, True, "cosine", None, dilated, self.training)
        flat = nodes.reshape(b * h * w, c)
        net = self.graph_conv.gconv.nn
        if self.conv == "mr":
            y = _interleave(flat, _max_relative(flat, g))  # (BN, 2C), ViG's channel order
            y = net(to_image(y.view(b, h * w, 2 * c), h, w))
        else:
            table = _dense_table(g)
            assert table is not None
            xi = flat.unsqueeze(1).expand(-1, self.k, -1)
            msg = torch.cat([xi, flat[table] - xi], dim=-1)  # (BN, k, 2C)
            msg = msg.view(b, h * w, self.k, 2 * c).permute(0, 3, 1, 2).contiguous()  # (B, 2C, N, k)
            y = net(msg).amax(dim=-1).view(b, 2 * c, h, w)
        y = self.fc2(y)
        return self.drop_path(y) + shortcut

    def extra_repr(self) -> str:
        s = f"{self.channels}, k={self.k}, dilation={self.dilation}, conv={self.conv!r}"
        if self.relative_pos:
            s += ", relative_pos=True"
        if self.stochastic:
            s += f", stochastic=True, epsilon={self.epsilon}"
        return s

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.extra_repr()})"


class FFN(nn.Module):
    r"""ViG's feed-forward block on a feature map: 1x1 conv + BN, activation, 1x1 conv + BN, residual.

    .. math::
        Y = \mathrm{DropPath}\big(\mathrm{BN}(W_2\, \sigma(\mathrm{BN}(W_1 X)))\big) + X

    Module names as ViG (``fc1.0``, ``fc1.1``, ``fc2.0``, ``fc2.1``).

    Args:
        in_features: Channels ``C``.
        hidden_features: Hidden channels (default ``C``; ViG uses ``4C``).
        out_features: Output channels (default ``C``; must equal ``C`` for the residual).
        act: Activation (see :class:`Grapher`).
        drop_path: Stochastic depth rate.
        device: Parameter device.
        dtype: Parameter dtype.

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, C, H, W)`

    Example:
        >>> ffn = graphvision.nn.FFN(48, 192)
        >>> ffn(torch.randn(2, 48, 7, 7)).shape
        torch.Size([2, 48, 7, 7])
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act: str = "gelu",
        drop_path: float = 0.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        c = check_positive_int(in_features, "in_features")
        hidden = check_positive_int(hidden_features if hidden_features is not None else c, "hidden_features")
        out = check_positive_int(out_features if out_features is not None else c, "out_features")
        if out != c:
            raise ValueError(f"Expected out_features == in_features = {c} for the residual (got {out})")
        check_choice(act, _ACTS, "act")
        dd = {"device": device, "dtype": dtype}
        self.in_features, self.hidden_features = c, hidden
        self.fc1 = nn.Sequential(nn.Conv2d(c, hidden, 1, **dd), nn.BatchNorm2d(hidden, **dd))
        self.act = _act(act)
        self.fc2 = nn.Sequential(nn.Conv2d(hidden, out, 1, **dd), nn.BatchNorm2d(out, **dd))
        self.drop_path = _DropPath(float(drop_path)) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        check_shape(x, ["B", self.in_features, "H", "W"], "x")
        return self.drop_path(self.fc2(self.act(self.fc1(x)))) + x

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.hidden_features}"
