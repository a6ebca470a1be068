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

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from graphvision._checks import check_floating, check_positive_int, check_tensor

__all__ = ["channel_attention", "multi_channel_attention"]


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
    q_weight: Tensor,
    kv_weight: Tensor,
    out_weight: Tensor,
    temperature: Tensor,
    heads: int = 1,
    q_bias: Tensor | None = None,
    kv_bias: Tensor | None = None,
    out_bias: Tensor | None = None,
    gate_weight: Tensor | None = None,
    gate_bias: Tensor | None = None,
    norm1_weight: Tensor | None = None,
    norm1_bias: Tensor | None = None,
    norm2_weight: Tensor | None = None,
    norm2_bias: Tensor | None = None,
    ffn1_weight: Tensor | None = None,
    ffn1_bias: Tensor | None = None,
    ffn2_weight: Tensor | None = None,
    ffn2_bias: Tensor | None = None,
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
    Optional parts: ``gate_weight=None`` drops the gate, ``ffn1_weight=None`` drops the
    feed-forward network, ``norm=False`` drops both layer norms (``norm*_weight=None`` with
    ``norm=True`` is a layer norm without affine parameters).

    Args:
        x: ``(B, C, H, W)`` feature map or ``(B, N, C)`` node features.
        q_weight: :math:`W_q`, ``(C, C)``.
        kv_weight: :math:`W_{kv}`, ``(2C, C)`` (keys then values).
        out_weight: :math:`W_o`, ``(C, C)``.
        temperature: :math:`\tau`, ``(K,)``.
        heads: Number of heads :math:`K` (divides ``C``).
        q_bias: ``(C,)`` or ``None``.
        kv_bias: ``(2C,)`` or ``None``.
        out_bias: ``(C,)`` or ``None``.
        gate_weight: :math:`W_g`, ``(C, C)``, or ``None`` for no gate.
        gate_bias: ``(C,)`` or ``None``.
        norm1_weight: Affine weight of :math:`\mathrm{LN}_1`, ``(C,)`` or ``None``.
        norm1_bias: Affine bias of :math:`\mathrm{LN}_1`, ``(C,)`` or ``None``.
        norm2_weight: Affine weight of :math:`\mathrm{LN}_2`, ``(C,)`` or ``None``.
        norm2_bias: Affine bias of :math:`\mathrm{LN}_2`, ``(C,)`` or ``None``.
        ffn1_weight: :math:`W_1`, ``(F, C)``, or ``None`` for no feed-forward network.
        ffn1_bias: ``(F,)`` or ``None``.
        ffn2_weight: :math:`W_2`, ``(C, F)`` (required with ``ffn1_weight``).
        ffn2_bias: ``(C,)`` or ``None``.
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
        >>> c = 8
        >>> w = lambda o, i: torch.randn(o, i) / i**0.5
        >>> x = torch.randn(2, c, 5, 5)
        >>> out, attn = multi_channel_attention(x, w(c, c), w(2 * c, c), w(c, c), torch.ones(2), heads=2,
        ...                                     gate_weight=w(c, c), return_attention_weights=True)
        >>> out.shape, attn.shape
        (torch.Size([2, 8, 5, 5]), torch.Size([2, 2, 4, 4]))
    """
    check_tensor(x, "x")
    if x.dim() not in (3, 4):
        raise ValueError(f"Expected 'x' of shape (B, C, H, W) or (B, N, C) (got {tuple(x.shape)})")
    check_floating(x, "x")
    image = x.dim() == 4
    c = x.size(1) if image else x.size(2)
    _check_weight(q_weight, "q_weight", (c, c), c)
    _check_weight(kv_weight, "kv_weight", (2 * c, c), c)
    _check_weight(out_weight, "out_weight", (c, c), c)
    for name, t, size in (
        ("q_bias", q_bias, c),
        ("kv_bias", kv_bias, 2 * c),
        ("out_bias", out_bias, c),
        ("gate_bias", gate_bias, c),
        ("norm1_weight", norm1_weight, c),
        ("norm1_bias", norm1_bias, c),
        ("norm2_weight", norm2_weight, c),
        ("norm2_bias", norm2_bias, c),
        ("ffn2_bias", ffn2_bias, c),
    ):
        if t is not None:
            _check_weight(t, name, (size,), c)
    if gate_weight is not None:
        _check_weight(gate_weight, "gate_weight", (c, c), c)
    if ffn1_weight is not None:
        check_tensor(ffn1_weight, "ffn1_weight")
        if ffn1_weight.dim() != 2 or ffn1_weight.size(1) != c:
            raise ValueError(f"Expected 'ffn1_weight' of shape (F, C) = (F, {c}) (got {tuple(ffn1_weight.shape)})")
        hidden = ffn1_weight.size(0)
        if ffn2_weight is None:
            raise ValueError("Expected 'ffn2_weight' of shape (C, F) together with 'ffn1_weight' (got None)")
        _check_weight(ffn2_weight, "ffn2_weight", (c, hidden), c)
        if ffn1_bias is not None:
            _check_weight(ffn1_bias, "ffn1_bias", (hidden,), c)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"Expected 'dropout' in [0, 1) (got {dropout!r})")
    heads = check_positive_int(heads, "heads")
    if c % heads != 0:
        raise ValueError(f"Expected the number of channels C={c} to be divisible by 'heads'={heads}")
    check_tensor(temperature, "temperature")
    if temperature.shape != (heads,):
        raise ValueError(f"Expected 'temperature' of shape (K,) = ({heads},) (got {tuple(temperature.shape)})")

    tokens = rearrange(x, "b c h w -> b (h w) c") if image else x  # (B, L, C)

    xn = F.layer_norm(tokens, (c,), norm1_weight, norm1_bias, eps) if norm else tokens
    q = F.linear(xn, q_weight, q_bias)
    k, v = F.linear(q, kv_weight, kv_bias).chunk(2, dim=-1)
    o, attn = channel_attention(q, k, v, temperature, heads, normalize, dropout=dropout, training=training)
    if gate_weight is not None:
        o = o * torch.sigmoid(F.linear(xn, gate_weight, gate_bias))
    y = tokens + F.linear(o, out_weight, out_bias)
    if ffn1_weight is not None:
        assert ffn2_weight is not None
        yn = F.layer_norm(y, (c,), norm2_weight, norm2_bias, eps) if norm else y
        hid = F.dropout(F.gelu(F.linear(yn, ffn1_weight, ffn1_bias)), dropout, training)
        y = y + F.linear(hid, ffn2_weight, ffn2_bias)

    out = rearrange(y, "b (h w) c -> b c h w", h=x.shape[2], w=x.shape[3]) if image else y
    return (out, attn) if return_attention_weights else out


def _check_weight(t: object, name: str, shape: tuple[int, ...], c: int) -> None:
    check_tensor(t, name)
    assert isinstance(t, Tensor)
    if tuple(t.shape) != shape:
        pattern = "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
        raise ValueError(f"Expected '{name}' of shape {pattern} for C={c} channels (got {tuple(t.shape)})")
