"""Module over :func:`graphvision.functional.mutual_information_adjacency`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphvision import config
from graphvision.functional._mutual_information import _check_args, mutual_information_adjacency

__all__ = ["MutualInformationAdjacency"]


class MutualInformationAdjacency(nn.Module):
    r"""Graph of pairwise mutual information between node feature vectors (soft histograms).

    See :func:`graphvision.functional.mutual_information_adjacency` for the estimator
    (Parzen soft histograms, :math:`P_{ij} = W_i^\top W_j / C`,
    :math:`\mathrm{MI}_{ij} = H_i + H_j - H_{ij}`), the normalisations, the sparsification
    rules and the memory-bounded (chunked torch / fused Triton) computation. The module has no
    parameters; it holds the options and is differentiable with respect to ``x``.

    Args:
        bins: Number of histogram bins (``>= 2``).
        bandwidth: Gaussian kernel width in bin widths (``None``: 0.5); ``0`` for hard binning.
        normalize: ``False``, ``True`` / ``"arithmetic"``, ``"geometric"``, ``"max"`` or ``"min"``.
        top_k: Keep the ``top_k`` largest MI values per target node.
        threshold: Keep entries ``>= threshold``.
        symmetric: Symmetrise the kept pattern.
        loop: Keep the diagonal.
        output: ``"dense"`` or ``"sparse"``.
        chunk_size: Rows per chunk of the torch path (``None``: from the memory budget).
        backend: ``None``, ``"auto"``, ``"torch"`` or ``"triton"``.

    Shape:
        - x: :math:`(B, N, C)` or :math:`(N, C)`
        - output (dense): :math:`(B, N, N)` or :math:`(N, N)`
        - output (sparse): edge_index :math:`(2, E)`, edge_weight :math:`(E,)`

    Example:
        >>> mi = MutualInformationAdjacency(bins=8, top_k=4, output="sparse")
        >>> mi
        MutualInformationAdjacency(bins=8, top_k=4, output='sparse')
        >>> edge_index, edge_weight = mi(torch.randn(2, 16, 32))
        >>> edge_index.shape[0], edge_weight.dim()
        (2, 1)
    """

    #: What the layer supports (read by the docs' capability table).
    _capabilities = {"batched": True, "per_sample_graph": "n/a", "edge_weight": "output", "fused_kernel": True, "compile_safe": "dense and fixed top-k; data-dependent sparse output needs capture_dynamic_output_shape_ops", "deterministic": True}

    def __init__(
        self,
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
    ) -> None:
        super().__init__()
        # validate the options now (with a dummy x), not on the first forward
        _check_args(torch.zeros(1, 1, 1), bins, bandwidth, normalize, top_k, threshold, output, chunk_size)
        if backend is not None:
            if backend not in config.BACKENDS:
                raise ValueError(f"Unknown backend {backend!r}; expected one of {config.BACKENDS}")
        self.bins = bins
        self.bandwidth = bandwidth
        self.normalize = normalize
        self.top_k = top_k
        self.threshold = threshold
        self.symmetric = symmetric
        self.loop = loop
        self.output = output
        self.chunk_size = chunk_size
        self.backend = backend

    def reset_parameters(self) -> None:
        """No parameters; present for API uniformity."""

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Compute the adjacency of ``x`` (see the class docstring)."""
        return mutual_information_adjacency(
            x,
            bins=self.bins,
            bandwidth=self.bandwidth,
            normalize=self.normalize,
            top_k=self.top_k,
            threshold=self.threshold,
            symmetric=self.symmetric,
            loop=self.loop,
            output=self.output,
            chunk_size=self.chunk_size,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        defaults = {
            "bandwidth": None,
            "normalize": False,
            "top_k": None,
            "threshold": None,
            "symmetric": True,
            "loop": False,
            "output": "dense",
            "chunk_size": None,
            "backend": None,
        }
        parts = [f"bins={self.bins}"]
        for name, default in defaults.items():
            value = getattr(self, name)
            if value != default or type(value) is not type(default):
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)
