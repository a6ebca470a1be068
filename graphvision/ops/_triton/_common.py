"""Validation and launch helpers shared by the Triton kernel files (``k_*.py``).

Every launcher checks dtypes, devices and shapes here *before* launching, so misuse gives a
clear ``TypeError`` / ``ValueError`` / ``RuntimeError`` naming the argument, what was expected and
what was got. Index values are not read back here: the public ops in :mod:`graphvision.ops`
validated the graph once (one host read when checks are on) and built the CSR themselves.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphvision.ops._triton import unusable_reason

__all__: list[str] = []

_INDEX_DTYPES = (torch.int32, torch.int64)
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def next_pow2(n: int) -> int:
    """Smallest power of two ``>= max(n, 1)``."""
    n = max(int(n), 1)
    return 1 << (n - 1).bit_length()


#: Smallest tile width along the feature / head axis. Triton 3.6 fails to compile (sm_90,
#: ``TritonGPURemoveLayoutConversions``: "mask type matches ptr type") tiles of shape (32, 1);
#: found by the H200 run of benchmarks/run_gpu.sh and reproduced on the CPU by compiling
#: ahead of time for sm_90 (tests/ops/test_triton_aot_compile.py). Masked lanes cost nothing.
MIN_LANES = 16


def lane_block(n: int, max_block: int, min_block: int = MIN_LANES) -> int:
    """Tile width for an axis of ``n`` lanes: next power of two, clamped to ``[min_block, max_block]``."""
    return max(min_block, min(next_pow2(n), max_block))


def cdiv(a: int, b: int) -> int:
    """Ceiling division."""
    return -(-a // b)


def check_device(op: str, **tensors: Tensor | None) -> torch.device:
    """All given tensors on one device on which Triton can run; returns that device."""
    device: torch.device | None = None
    first = ""
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected '{name}' to be a torch.Tensor (got {type(t).__name__})")
        if device is None:
            device, first = t.device, name
        elif t.device != device:
            raise ValueError(f"{op}: expected '{name}' on the same device as '{first}' ({device}) (got {t.device})")
    assert device is not None  # at least one tensor is always given by the callers
    reason = unusable_reason(device)
    if reason is not None:
        raise RuntimeError(f"{op}: the Triton backend cannot run here: {reason}")
    return device


def check_index_tensor(op: str, t: Tensor, name: str, numel: int | None = None) -> Tensor:
    """A 1-D int32/int64 tensor (optionally of a given length); returned contiguous."""
    if t.dtype not in _INDEX_DTYPES:
        raise TypeError(f"{op}: expected '{name}' of dtype torch.int64 or torch.int32 (got {t.dtype})")
    if t.dim() != 1:
        raise ValueError(f"{op}: expected '{name}' of shape (n,) (got {tuple(t.shape)})")
    if numel is not None and t.numel() != numel:
        raise ValueError(f"{op}: expected '{name}' of shape ({numel},) (got {tuple(t.shape)})")
    return t.contiguous()


def check_float_tensor(op: str, t: Tensor, name: str, shape: tuple[int | str, ...]) -> Tensor:
    """A floating tensor of the given shape (ints are fixed sizes, strings any size); contiguous."""
    if not t.is_floating_point() or t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: expected '{name}' of a floating dtype {_FLOAT_DTYPES} (got {t.dtype})")
    pattern = "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
    if t.dim() != len(shape) or any(isinstance(s, int) and t.shape[i] != s for i, s in enumerate(shape)):
        raise ValueError(f"{op}: expected '{name}' of shape {pattern} (got {tuple(t.shape)})")
    return t.contiguous()


def check_rowptr(op: str, rowptr: Tensor, num_edges: int, name: str = "rowptr") -> Tensor:
    """A CSR row pointer ``(n+1,)`` (dtype, device and shape; never its values).

    Kernels are internal: the public ops validated the graph once (index range, CSR built by
    graphvision itself), so a kernel reads no value back from the device.
    """
    rowptr = check_index_tensor(op, rowptr, name)
    if rowptr.numel() < 1:
        raise ValueError(
            f"{op}: expected '{name}' of shape (n + 1,) with at least one entry (got {tuple(rowptr.shape)})"
        )
    return rowptr


def check_weight(op: str, weight: Tensor | None, num_edges: int, heads: int) -> tuple[Tensor | None, int]:
    """Edge weights ``None``, ``(E,)`` or ``(E, K)``; returns ``(weight, mode)`` with mode 0/1/2."""
    if weight is None:
        return None, 0
    if not isinstance(weight, Tensor):
        raise TypeError(f"{op}: expected 'weight' to be a torch.Tensor or None (got {type(weight).__name__})")
    if weight.dim() == 1:
        return check_float_tensor(op, weight, "weight", (num_edges,)), 1
    if weight.dim() == 2:
        return check_float_tensor(op, weight, "weight", (num_edges, heads)), 2
    raise ValueError(f"{op}: expected 'weight' of shape (E,) or (E, K) = ({num_edges},) or ({num_edges}, {heads}) "
                     f"(got {tuple(weight.shape)})")


def dummy(device: torch.device) -> Tensor:
    """A 1-element tensor passed for pointer arguments a kernel does not read (constexpr-disabled)."""
    return torch.empty(1, device=device, dtype=torch.float32)


def acc_type(dtype: torch.dtype):  # noqa: ANN201 - a triton dtype; triton is imported lazily
    """Accumulator dtype for a kernel: ``tl.float64`` for float64 inputs, else ``tl.float32``."""
    import triton.language as tl

    return tl.float64 if dtype == torch.float64 else tl.float32
