"""Module over :func:`graphvision.functional.multi_channel_attention`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphvision._checks import check_positive_int
from graphvision.functional._channel_attention import Affine, ChannelAttentionWeights, multi_channel_attention

__all__ = ["MultiChannelAttention"]


class MultiChannelAttention(nn.Module):
    r"""Multi-channel (cross-channel) attention block as in RMCG, on images or node features.

    From "Relation-aware multi-channel attention based graph convolutional network"
    (RMCG, breast-cancer histopathology), built on Restormer's transposed attention (MDTA,
    https://arxiv.org/abs/2111.09881) with DANet's channel attention
    (https://arxiv.org/abs/1809.02983) as the reference for the channel relation:

    .. math::
        \begin{aligned}
        \bar X &= \mathrm{LN}_1(X),\quad Q = \bar X W_q^\top,\quad [K \,\|\, V] = Q W_{kv}^\top \\
        A_h &= \operatorname{softmax}\big(\tau_h\, \hat Q_h \hat K_h^\top\big)
            \in \mathbb{R}^{\frac CK \times \frac CK},
            \quad O_h = A_h V_h \\
        Y &= X + \big(O \odot \sigma(\bar X W_g^\top)\big) W_o^\top, \quad
        \mathrm{out} = Y + \mathrm{FFN}(\mathrm{LN}_2(Y))
        \end{aligned}

    with :math:`\hat Q_h, \hat K_h` the head's channels L2-normalised over the ``L = H*W``
    positions and :math:`\tau_h` a learnable temperature per head (biases omitted). Keys and
    values are a cross-channel fusion (a 1x1 convolution) of the queries. See
    :func:`graphvision.functional.multi_channel_attention` for the full formulas and the
    reasons behind each choice. Cost :math:`O(L C^2)`: linear in the number of pixels or
    nodes; no ``L x L`` matrix.

    The channel relation of the last forward is kept in :attr:`last_attention` (detached,
    ``(B, K, C/K, C/K)``) and returned by ``forward(x, return_attention_weights=True)``.

    Args:
        channels: Number of channels :math:`C`.
        heads: Number of heads :math:`K` (divides ``C``); ``1`` gives one full ``C x C`` relation.
        ffn_ratio: Hidden size of the feed-forward network as a multiple of ``C``; ``0`` for none.
        gate: Use the sigmoid gate.
        norm: Use the (pre-)layer norms.
        normalize: L2-normalise queries and keys (MDTA); ``False`` for raw DANet energies.
        bias: Biases in the projections.
        dropout: Dropout on the relation matrix and the FFN hidden layer.
        device: Device of the parameters.
        dtype: Dtype of the parameters.

    Shape:
        - x: :math:`(B, C, H, W)` or :math:`(B, N, C)`
        - output: same as ``x``; attention :math:`(B, K, C/K, C/K)`

    Example:
        >>> mca = MultiChannelAttention(16, heads=4)
        >>> mca.extra_repr()
        '16, heads=4, ffn_ratio=2.0'
        >>> mca(torch.randn(2, 16, 7, 7)).shape
        torch.Size([2, 16, 7, 7])
        >>> out, attn = mca(torch.randn(2, 49, 16), return_attention_weights=True)
        >>> out.shape, attn.shape
        (torch.Size([2, 49, 16]), torch.Size([2, 4, 4, 4]))
    """

    #: What the layer supports (read by the docs' capability table).
    _capabilities = {"batched": True, "per_sample_graph": "n/a", "edge_weight": "n/a", "fused_kernel": False, "compile_safe": True, "deterministic": True}

    last_attention: Tensor | None

    def __init__(
        self,
        channels: int,
        heads: int = 1,
        ffn_ratio: float = 2.0,
        gate: bool = True,
        norm: bool = True,
        normalize: bool = True,
        bias: bool = True,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        channels = check_positive_int(channels, "channels")
        heads = check_positive_int(heads, "heads")
        if channels % heads != 0:
            raise ValueError(f"Expected 'channels'={channels} to be divisible by 'heads'={heads}")
        if isinstance(ffn_ratio, bool) or not isinstance(ffn_ratio, (int, float)) or ffn_ratio < 0:
            raise ValueError(f"Expected 'ffn_ratio' >= 0 (got {ffn_ratio!r})")
        hidden = int(round(ffn_ratio * channels))
        if ffn_ratio > 0 and hidden < 1:
            raise ValueError(f"Expected 'ffn_ratio' * channels >= 1 (got {ffn_ratio} * {channels})")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"Expected 'dropout' in [0, 1) (got {dropout!r})")
        dd = {"device": device, "dtype": dtype}
        self.channels = channels
        self.heads = heads
        self.ffn_ratio = float(ffn_ratio)
        self.hidden_channels = hidden
        self.gate = gate
        self.norm = norm
        self.normalize = normalize
        self.bias = bias
        self.dropout = float(dropout)

        self.norm1 = nn.LayerNorm(channels, **dd) if norm else None
        self.q_proj = nn.Linear(channels, channels, bias=bias, **dd)
        self.kv_proj = nn.Linear(channels, 2 * channels, bias=bias, **dd)
        self.gate_proj = nn.Linear(channels, channels, bias=bias, **dd) if gate else None
        self.out_proj = nn.Linear(channels, channels, bias=bias, **dd)
        self.temperature = nn.Parameter(torch.empty(heads, **dd))
        if hidden > 0:
            self.norm2 = nn.LayerNorm(channels, **dd) if norm else None
            self.ffn1 = nn.Linear(channels, hidden, bias=bias, **dd)
            self.ffn2 = nn.Linear(hidden, channels, bias=bias, **dd)
        else:
            self.norm2 = None
            self.ffn1 = None
            self.ffn2 = None
        self.last_attention = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise: ``nn.Linear`` defaults, unit temperatures, identity layer norms."""
        for m in (self.norm1, self.q_proj, self.kv_proj, self.gate_proj, self.out_proj, self.norm2, self.ffn1,
                  self.ffn2):
            if m is not None:
                m.reset_parameters()
        nn.init.ones_(self.temperature)
        self.last_attention = None

    def forward(self, x: Tensor, return_attention_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Apply the block to ``x`` (``(B, C, H, W)`` or ``(B, N, C)``); see the class docstring."""
        out, attn = multi_channel_attention(
            x,
            self._weights(),
            self.heads,
            norm=self.norm,
            normalize=self.normalize,
            dropout=self.dropout,
            training=self.training,
            return_attention_weights=True,
        )
        if not torch.compiler.is_compiling():
            self.last_attention = attn.detach()
        return (out, attn) if return_attention_weights else out

    def _weights(self) -> ChannelAttentionWeights:
        """The parameters as :func:`graphvision.functional.multi_channel_attention` takes them."""
        return ChannelAttentionWeights(
            _affine(self.q_proj),
            _affine(self.kv_proj),
            _affine(self.out_proj),
            self.temperature,
            gate_proj=_affine(self.gate_proj),
            norm1=_affine(self.norm1),
            norm2=_affine(self.norm2),
            ffn1=_affine(self.ffn1),
            ffn2=_affine(self.ffn2),
        )

    def extra_repr(self) -> str:
        parts = [f"{self.channels}", f"heads={self.heads}", f"ffn_ratio={self.ffn_ratio}"]
        for name, default in (("gate", True), ("norm", True), ("normalize", True), ("bias", True)):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        return ", ".join(parts)



def _affine(m: nn.Module | None) -> Affine | None:
    """``Affine(m.weight, m.bias)`` of a linear layer or layer norm (``None`` for an absent one)."""
    return None if m is None else Affine(m.weight, m.bias)
