"""Comparison helpers with per-dtype tolerances and informative failure messages."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["TOLERANCES", "tolerance", "assert_close"]

#: (rtol, atol) per dtype, for comparing a result with a float64/float32 reference computed on
#: the same inputs. Low-precision kernels follow flash-attention's rule of thumb: within about
#: twice the error of PyTorch's own same-dtype computation.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.bfloat16: (3e-2, 3e-2),
    torch.float16: (5e-3, 5e-3),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """Return ``(rtol, atol)`` for ``dtype`` from :data:`TOLERANCES` (exact for other dtypes)."""
    return TOLERANCES.get(dtype, (0.0, 0.0))


def assert_close(
    actual: Tensor,
    expected: Tensor,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    msg: str = "",
) -> None:
    """Assert that two tensors are close, reporting the count and first positions of mismatches.

    The tolerance defaults to :func:`tolerance` of the lower-precision dtype of the two.
    ``expected`` is cast to ``actual``'s dtype and device before comparing.

    Args:
        actual: The tensor under test.
        expected: The reference.
        rtol: Relative tolerance (default from the table).
        atol: Absolute tolerance (default from the table).
        msg: Prefix for the failure message.

    Example:
        >>> assert_close(torch.ones(3), torch.ones(3, dtype=torch.float64))
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"{msg} shape mismatch: {tuple(actual.shape)} vs expected {tuple(expected.shape)}")
    if actual.is_floating_point() or expected.is_floating_point():
        lo = actual.dtype if torch.finfo(actual.dtype).eps >= torch.finfo(expected.dtype).eps else expected.dtype
        d_rtol, d_atol = tolerance(lo)
        rtol = d_rtol if rtol is None else rtol
        atol = d_atol if atol is None else atol
        a = actual.detach().to("cpu", torch.float64)
        e = expected.detach().to("cpu", torch.float64)
    else:
        rtol = 0.0 if rtol is None else rtol
        atol = 0.0 if atol is None else atol
        # integers and bools compare exactly (as int64: bool tensors cannot be subtracted)
        a = actual.detach().cpu().to(torch.int64)
        e = expected.detach().cpu().to(torch.int64)
    nan_a, nan_e = torch.isnan(a) if a.is_floating_point() else None, torch.isnan(e) if e.is_floating_point() else None
    if nan_a is not None and nan_e is not None and not torch.equal(nan_a, nan_e):
        idx = (nan_a != nan_e).nonzero()[:5].tolist()
        raise AssertionError(f"{msg} NaN positions differ (first at {idx})")
    if a.numel() == 0:
        return
    if a.is_floating_point():
        ok = torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    else:
        ok = (a - e).abs() <= atol
    if not bool(ok.all()):
        bad = (~ok).nonzero()
        first = bad[:5].tolist()
        diff = (a - e).abs()
        if diff.is_floating_point():
            diff = diff.nan_to_num(0.0)
        raise AssertionError(
            f"{msg} {bad.size(0)} of {a.numel()} elements differ (rtol={rtol}, atol={atol}); "
            f"max abs diff {float(diff.max()):.3e}; first at {first}: "
            f"actual {[float(a[tuple(i)]) for i in first]} vs expected {[float(e[tuple(i)]) for i in first]}"
        )
