"""Guarded Triton import: ``import graphvision`` never requires Triton.

Triton kernels run on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` was set
before Triton was imported (the interpreter; used by the tests on machines without a GPU).
"""

from __future__ import annotations

import os

import torch

__all__ = ["HAS_TRITON", "TRITON_IMPORT_ERROR", "interpret_mode", "triton_usable", "unusable_reason"]

_import_state: dict[str, object] = {}


def _try_import() -> tuple[bool, str | None]:
    """Import Triton on first use (never at ``import graphvision``) and remember the outcome."""
    if "ok" not in _import_state:
        try:  # pragma: no cover - depends on the environment
            import triton  # noqa: F401
            import triton.language  # noqa: F401

            _import_state["ok"], _import_state["error"] = True, None
        except Exception as exc:  # pragma: no cover - depends on the environment
            _import_state["ok"], _import_state["error"] = False, f"{type(exc).__name__}: {exc}"
    return bool(_import_state["ok"]), _import_state["error"]  # type: ignore[return-value]


def __getattr__(name: str) -> object:
    # HAS_TRITON / TRITON_IMPORT_ERROR are resolved lazily (PEP 562) so that importing
    # graphvision never imports Triton, and TRITON_INTERPRET can still be set late.
    if name == "HAS_TRITON":
        return _try_import()[0]
    if name == "TRITON_IMPORT_ERROR":
        return _try_import()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def interpret_mode() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def unusable_reason(device: torch.device) -> str | None:
    """Why Triton kernels cannot run on ``device``, or ``None`` when they can."""
    ok, error = _try_import()
    if not ok:
        return f"Triton is not installed or failed to import ({error})"
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
