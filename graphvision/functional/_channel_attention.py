r"""Multi-channel (cross-channel, "transposed") attention on feature maps or node features.

The attention relates *channels*, not positions: per head the relation matrix is
``(C/K) x (C/K)`` and is obtained by contracting over the ``L = H*W`` (or ``N``) positions, so
the cost is :math:`O(C^2 L / K)`, linear in the number of pixels / nodes, and no ``L x L``
matrix is ever formed. Designs it follows:

- Restormer's MDTA (Zamir et al., CVPR 2022, https://arxiv.org/abs/2111.09881): queries and
  keys L2-normalised over the spatial axis, a learnable temperature per head,
  :math:`\mathrm{softmax}(\tau\, \hat Q \hat K^\top)` of size ``C/K x C/K``;
- DANet's channel attention module (Fu et al., CVPR 2019, https://arxiv.org/abs/1809.02983):
  :math:`\mathrm{softmax}(X X^\top)` over channels applied to :math:`X`, with a residual;
  ``normalize=False`` with ``temperature=1`` and identity projections gives its energy;
- RMCG ("Relation-aware multi-channel attention based graph convolutional network",
  breast-cancer histopathology): keys and values produced by a cross-channel fusion of the
  queries, element-wise gating, a feed-forward network and a residual.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from graphvision._checks import check_floating, check_positive_int, check_tensor

__all__ = ["Affine", "ChannelAttentionWeights", "channel_attention", "multi_channel_attention"]


class Affine(NamedTuple):
    r"""The weight and optional bias of an affine map: a linear layer, or a layer norm's affine part.

    Unpacks as ``weight, bias``, so ``F.linear(x, *affine)`` applies it. Built from a module with
    ``Affine(m.weight, m.bias)``.

    Attributes:
        weight: ``(out, in)`` for a linear layer, ``(C,)`` for a layer norm.
        bias: ``(out,)`` / ``(C,)``, or ``None``.

    Shape:
        - weight: :math:`(F_{out}, F_{in})` or :math:`(C,)`
        - bias: :math:`(F_{out},)` or :math:`(C,)`, optional

    Example:
        >>> from graphvision.functional import Affine
        >>> lin = torch.nn.Linear(4, 3)
        >>> affine = Affine(lin.weight, lin.bias)
        >>> torch.allclose(torch.nn.functional.linear(torch.ones(2, 4), *affine), lin(torch.ones(2, 4)))
        True
    """

    weight: Tensor
    bias: Tensor | None = None


class ChannelAttentionWeights(NamedTuple):
    r"""The learned tensors of :func:`multi_channel_attention`.

    Named as the parameters of :class:`graphvision.nn.MultiChannelAttention` (``q_proj``,
    ``kv_proj``, ``norm1``, ...), which builds it at each call.

    Attributes:
        q_proj: :math:`W_q, b_q`, weight ``(C, C)``.
        kv_proj: :math:`W_{kv}, b_{kv}`, weight ``(2C, C)`` (keys then values).
        out_proj: :math:`W_o, b_o`, weight ``(C, C)``.
        temperature: :math:`\tau`, ``(K,)``.
        gate_proj: :math:`W_g, b_g`, weight ``(C, C)``, or ``None`` for no gate.
        norm1: Affine part of :math:`\mathrm{LN}_1`, ``(C,)``, or ``None`` (no affine part).
        norm2: Affine part of :math:`\mathrm{LN}_2`, ``(C,)``, or ``None`` (no affine part).
        ffn1: :math:`W_1, b_1`, weight ``(F, C)``, or ``None`` for no feed-forward network.
        ffn2: :math:`W_2, b_2`, weight ``(C, F)`` (required with ``ffn1``).

    Shape:
        - q_proj, out_proj, gate_proj: :math:`(C, C)` weights, :math:`(C,)` biases
        - kv_proj: :math:`(2C, C)` weight, :math:`(2C,)` bias
        - temperature: :math:`(K,)`
        - ffn1: :math:`(F, C)`, ffn2: :math:`(C, F)`

    Example:
        >>> from graphvision.functional import Affine, ChannelAttentionWeights
        >>> c = 4
        >>> weights = ChannelAttentionWeights(
        ...     Affine(torch.eye(c)), Affine(torch.cat([torch.eye(c), torch.eye(c)])), Affine(torch.eye(c)),
        ...     temperature=torch.ones(2))
        >>> weights.gate_proj is None, weights.kv_proj.weight.shape
        (True, torch.Size([8, 4]))
    """

    q_proj: Affine
    kv_proj: Affine
    out_proj: Affine
    temperature: Tensor
    gate_proj: Affine | None = None
    norm1: Affine | None = None
    norm2: Affine | None = None
    ffn1: Affine | None = None
    ffn2: Affine | None = None


def channel_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    temperature: Tensor | float = 1.0,
    heads: int = 1,
    normalize: bool = True,
    eps: float = 1e-12,
    dropout: float = 0.0,
    training: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""Transposed (channel-to-channel) attention, the core of :class:`~graphvision.nn.MultiChannelAttention`.

    Channels are split into ``heads`` groups of :math:`d = C/K`. For each head :math:`h`, with
    :math:`Q_h, K_h, V_h \in \mathbb{R}^{d \times L}` (channels x positions):

    .. math::
        \hat Q_h = Q_h / \lVert Q_h \rVert_{2,\text{row}}, \quad
        \hat K_h = K_h / \lVert K_h \rVert_{2,\text{row}}, \quad
        A_h = \operatorname{softmax}_{\text{row}}\big(\tau_h\, \hat Q_h \hat K_h^\top\big)
        \in \mathbb{R}^{d \times d}, \quad
        O_h = A_h V_h

    (Restormer MDTA). The rows are L2-normalised over the ``L`` positions (``normalize=True``),
    so the logits are cosine similarities of channels in :math:`[-\tau, \tau]` whatever ``L``;
    with ``normalize=False`` they are raw inner products (DANet's channel energy
    :math:`X X^\top`). Cost :math:`O(C^2 L / K)`: linear in ``L``.

    Args:
        q: Queries, ``(B, L, C)`` (positions first, channels last).
        k: Keys, same shape.
        v: Values, same shape.
        temperature: :math:`\tau`, a float or a tensor of shape ``(K,)`` (one per head).
        heads: Number of heads :math:`K`; must divide ``C``.
        normalize: L2-normalise queries and keys over the positions.
        eps: Floor of the norms (a zero channel gives zero logits, not NaN).
        dropout: Dropout probability on the relation matrix before it is applied to ``v``
            (the returned ``attention`` is the matrix before dropout).
        training: Apply dropout.

    Returns:
        ``(out, attention)``: ``out`` of shape ``(B, L, C)`` and the channel relation
        ``attention`` of shape ``(B, K, C/K, C/K)`` (rows sum to 1).

    Shape:
        - q, k, v: :math:`(B, L, C)`
        - temperature: scalar or :math:`(K,)`
        - output: :math:`(B, L, C)`, attention :math:`(B, K, C/K, C/K)`

    Example:
        >>> q = k = v = torch.randn(2, 49, 8)
        >>> out, attn = channel_attention(q, k, v, heads=2)
        >>> out.shape, attn.shape
        (torch.Size([2, 49, 8]), torch.Size([2, 2, 4, 4]))
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(t, name)
        if t.dim() != 3:
            raise ValueError(f"Expected '{name}' of shape (B, L, C) (got {tuple(t.shape)})")
        check_floating(t, name)
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"Expected 'q', 'k' and 'v' of the same shape (B, L, C) "
            f"(got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)})"
        )
    heads = check_positive_int(heads, "heads")
    bsz, length, c = q.shape
    if c % heads != 0:
        raise ValueError(f"Expected the number of channels C={c} to be divisible by 'heads'={heads}")
    d = c // heads
    if isinstance(temperature, Tensor):
        if temperature.numel() not in (1, heads) or temperature.dim() > 1:
            raise ValueError(
                f"Expected 'temperature' of shape (K,) = ({heads},) or a scalar (got {tuple(temperature.shape)})"
            )
        tau = temperature.reshape(-1, 1, 1)
    else:
        tau = float(temperature)

    # (B, L, C) -> (B, K, d, L): channels of each head as rows, positions as columns
    def split(t: Tensor) -> Tensor:
        return rearrange(t, "b l (k d) -> b k d l", k=heads, d=d)

    qh, kh, vh = split(q), split(k), split(v)
    if normalize:
        qh = F.normalize(qh, dim=-1, eps=eps)
        kh = F.normalize(kh, dim=-1, eps=eps)
    attn = torch.softmax((qh @ kh.transpose(-1, -2)) * tau, dim=-1)  # (B, K, d, d)
    out = (F.dropout(attn, dropout, training) if dropout > 0.0 and training else attn) @ vh  # (B, K, d, L)
    return out.permute(0, 3, 1, 2).reshape(bsz, length, c), attn


def multi_channel_attention(
    x: Tensor,
    weights: ChannelAttentionWeights,
    heads: int = 1,
    *,
    norm: bool = True,
    normalize: bool = True,
    dropout: float = 0.0,
    training: bool = False,
    eps: float = 1e-5,
    return_attention_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Multi-channel attention block (RMCG-style) on a ``(B, C, H, W)`` map or ``(B, N, C)`` nodes.

    With :math:`X \in \mathbb{R}^{L \times C}` the ``L = H W`` (or ``N``) positions of one
    sample, :math:`\mathrm{LN}` a layer norm over channels, :math:`\sigma` the logistic sigmoid
    and all products by :math:`W_\ast` acting on the channel axis (1x1 convolutions):

    .. math::
        \begin{aligned}
        \bar X &= \mathrm{LN}_1(X), \qquad Q = \bar X W_q^\top + b_q \\
        [K \,\|\, V] &= Q\, W_{kv}^\top + b_{kv}
            && \text{(cross-channel fusion of the queries)} \\
        O, A &= \mathrm{ChannelAttention}(Q, K, V; \tau, \text{heads})
            && A_h = \operatorname{softmax}(\tau_h \hat Q_h \hat K_h^\top) \in \mathbb{R}^{d\times d} \\
        G &= \sigma(\bar X W_g^\top + b_g) && \text{(element-wise gate)} \\
        Y &= X + (O \odot G)\, W_o^\top + b_o && \text{(residual)} \\
        \mathrm{out} &= Y + \mathrm{GELU}(\mathrm{LN}_2(Y) W_1^\top + b_1)\, W_2^\top + b_2
            && \text{(feed-forward, residual)}
        \end{aligned}

    See :func:`channel_attention` for the attention (L2-normalised over positions, MDTA).
    Choices and why:

    - **Keys and values from the queries** (:math:`W_{kv}` mixes all query channels): each
      channel of a query is compared with learned *mixtures* of the query channels, so the
      relation :math:`A` is between a channel and cross-channel combinations, the "relation
      aware" fusion of RMCG, at one extra :math:`C \times 2C` matmul; with
      :math:`W_{kv} = [I; I]` it reduces to DANet-style self-relation of :math:`Q`.
    - **Gate** on the attention output before the output projection (as in gated attention):
      a per-position, per-channel :math:`\sigma` computed from the normalised input lets the
      block suppress channels at pixels where the global channel relation does not apply.
    - **Pre-norm residuals** (Restormer / ViT) keep the block an identity plus a correction,
      stable when stacked.

    The relation matrix is block diagonal: one ``C/K x C/K`` block per head; ``heads=1`` gives
    the full ``C x C`` relation. No ``L x L`` tensor is formed: cost :math:`O(L C^2)`.
    Optional parts (fields of ``weights``): ``gate_proj=None`` drops the gate, ``ffn1=None``
    drops the feed-forward network; ``norm=False`` drops both layer norms (``norm1=None`` /
    ``norm2=None`` with ``norm=True`` is a layer norm without affine parameters).

    Args:
        x: ``(B, C, H, W)`` feature map or ``(B, N, C)`` node features.
        weights: The projections, layer-norm affines and temperatures
            (:class:`ChannelAttentionWeights`, named as the parameters of
            :class:`graphvision.nn.MultiChannelAttention`).
        heads: Number of heads :math:`K` (divides ``C``; ``weights.temperature`` is ``(K,)``).
        norm: Apply the layer norms.
        normalize: L2-normalise queries and keys (MDTA); ``False`` for raw DANet energies.
        dropout: Dropout probability on the attention matrix and the FFN hidden layer.
        training: Apply dropout.
        eps: Layer-norm epsilon.
        return_attention_weights: Also return the channel relation.

    Returns:
        The output, same shape as ``x``; with ``return_attention_weights`` the tuple
        ``(out, attention)`` with ``attention`` of shape ``(B, K, C/K, C/K)``.

    Shape:
        - x: :math:`(B, C, H, W)` or :math:`(B, N, C)`
        - output: same as ``x``; attention :math:`(B, K, C/K, C/K)`

    Example:
        >>> from graphvision.functional import Affine, ChannelAttentionWeights
        >>> c = 8
        >>> w = lambda o, i: Affine(torch.randn(o, i) / i**0.5)
        >>> weights = ChannelAttentionWeights(w(c, c), w(2 * c, c), w(c, c), torch.ones(2), gate_proj=w(c, c))
        >>> x = torch.randn(2, c, 5, 5)
        >>> out, attn = multi_channel_attention(x, weights, heads=2, return_attention_weights=True)
        >>> out.shape, attn.shape
        (torch.Size([2, 8, 5, 5]), torch.Size([2, 2, 4, 4]))
    """
    check_tensor(x, "x")
    if x.dim() not in (3, 4):
        raise ValueError(f"Expected 'x' of shape (B, C, H, W) or (B, N, C) (got {tuple(x.shape)})")
    check_floating(x, "x")
    image = x.dim() == 4
    c = x.size(1) if image else x.size(2)
    w = _check_weights(weights, c)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"Expected 'dropout' in [0, 1) (got {dropout!r})")
    heads = check_positive_int(heads, "heads")
    if c % heads != 0:
        raise ValueError(f"Expected the number of channels C={c} to be divisible by 'heads'={heads}")
    if w.temperature.shape != (heads,):
        raise ValueError(f"Expected 'temperature' of shape (K,) = ({heads},) (got {tuple(w.temperature.shape)})")

    tokens = rearrange(x, "b c h w -> b (h w) c") if image else x  # (B, L, C)

    xn = _layer_norm(tokens, w.norm1, eps) if norm else tokens
    q = F.linear(xn, *w.q_proj)
    k, v = F.linear(q, *w.kv_proj).chunk(2, dim=-1)
    o, attn = channel_attention(q, k, v, w.temperature, heads, normalize, dropout=dropout, training=training)
    if w.gate_proj is not None:
        o = o * torch.sigmoid(F.linear(xn, *w.gate_proj))
    y = tokens + F.linear(o, *w.out_proj)
    if w.ffn1 is not None:
        assert w.ffn2 is not None
        yn = _layer_norm(y, w.norm2, eps) if norm else y
        hid = F.dropout(F.gelu(F.linear(yn, *w.ffn1)), dropout, training)
        y = y + F.linear(hid, *w.ffn2)

    out = rearrange(y, "b (h w) c -> b c h w", h=x.shape[2], w=x.shape[3]) if image else y
    return (out, attn) if return_attention_weights else out


def _layer_norm(t: Tensor, affine: Affine | None, eps: float) -> Tensor:
    weight, bias = affine if affine is not None else (None, None)
    return F.layer_norm(t, (t.size(-1),), weight, bias, eps)


def _as_affine(affine: object, name: str) -> Affine:
    if not isinstance(affine, Affine):
        raise TypeError(f"Expected '{name}' to be an Affine(weight, bias) (got {type(affine).__name__})")
    return affine


def _check_affine(affine: object, name: str, shape: tuple[int, ...], c: int, required: bool = False) -> None:
    """Check an optional ``Affine`` against its weight ``shape`` (the bias is ``(shape[0],)``)."""
    if affine is None:
        if required:
            raise ValueError(f"Expected '{name}' to be an Affine(weight, bias) (got None)")
        return
    affine = _as_affine(affine, name)
    _check_weight(affine.weight, f"{name}.weight", shape, c)
    if affine.bias is not None:
        _check_weight(affine.bias, f"{name}.bias", shape[:1], c)


def _check_weights(weights: object, c: int) -> ChannelAttentionWeights:
    if not isinstance(weights, ChannelAttentionWeights):
        raise TypeError(f"Expected 'weights' to be a ChannelAttentionWeights (got {type(weights).__name__})")
    for name, rows in (("q_proj", c), ("kv_proj", 2 * c), ("out_proj", c)):
        _check_affine(getattr(weights, name), name, (rows, c), c, required=True)
    _check_affine(weights.gate_proj, "gate_proj", (c, c), c)
    _check_affine(weights.norm1, "norm1", (c,), c)
    _check_affine(weights.norm2, "norm2", (c,), c)
    check_tensor(weights.temperature, "temperature")
    if weights.ffn1 is not None:
        w1 = check_tensor(_as_affine(weights.ffn1, "ffn1").weight, "ffn1.weight")
        if w1.dim() != 2 or w1.size(1) != c:
            raise ValueError(f"Expected 'ffn1.weight' of shape (F, C) = (F, {c}) (got {tuple(w1.shape)})")
        _check_affine(weights.ffn1, "ffn1", (w1.size(0), c), c)
        _check_affine(weights.ffn2, "ffn2", (c, w1.size(0)), c, required=True)
    return weights


def _pattern(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def _check_weight(t: object, name: str, shape: tuple[int, ...], c: int) -> None:
    check_tensor(t, name)
    assert isinstance(t, Tensor)
    if tuple(t.shape) != shape:
        raise ValueError(f"Expected '{name}' of shape {_pattern(shape)} for C={c} channels (got {tuple(t.shape)})")
