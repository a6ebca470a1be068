"""Guarded Triton import: ``import graphvision`` never requires Triton.

Triton kernels run on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` was set
before Triton was imported (the interpreter; used by the tests on machines without a GPU).
"""

from __future__ import annotations

import os

import torch

__all__ = ["HAS_TRITON", "TRITON_IMPORT_ERROR", "interpret_mode", "triton_usable", "unusable_reason"]

try:  # pragma: no cover - depends on the environment
    import triton  # noqa: F401
    import triton.language  # noqa: F401

    HAS_TRITON = True
    TRITON_IMPORT_ERROR: str | None = None
except Exception as exc:  # pragma: no cover - depends on the environment
    HAS_TRITON = False
    TRITON_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"


def interpret_mode() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def unusable_reason(device: torch.device) -> str | None:
    """Why Triton kernels cannot run on ``device``, or ``None`` when they can."""
    if not HAS_TRITON:
        return f"Triton is not installed or failed to import ({TRITON_IMPORT_ERROR})"
    if device.type == "cuda":
        return None
    if device.type == "cpu" and interpret_mode():
        return None
    return (
        f"Triton kernels need a CUDA tensor (got device {device}); on the CPU they run only "
        "under TRITON_INTERPRET=1, set before Triton is imported"
    )


def triton_usable(device: torch.device) -> bool:
    """True when Triton kernels can run on tensors of ``device``."""
    return unusable_reason(device) is None
