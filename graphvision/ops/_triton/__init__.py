"""Guarded Triton import: ``import graphvision`` never requires Triton.

Triton kernels run on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` was set
before Triton was imported (the interpreter; used by the tests on machines without a GPU).

Kernel files (one per op; each exports the backend functions of the ops contract in
DEVELOPING.md, with the same names and signatures as ``graphvision.ops._torch``):

==========================  ==================================================  =============
file                        functions                                           deterministic
==========================  ==================================================  =============
``k_spmm.py``               ``spmm_csr``                                        yes
``k_sddmm.py``              ``sddmm_csr``                                       yes
``k_segment_softmax.py``    ``segment_softmax_csr``,                            yes
                            ``segment_softmax_backward_csr``
``k_segment_reduce.py``     ``segment_reduce_csr`` (sum, mean, max, min + arg)  yes
``k_attention.py``          ``attention_forward_csr``,                          yes
                            ``attention_backward_csr``
``k_attention_pool.py``     ``attention_pool_ptr``                              yes
==========================  ==================================================  =============

Every kernel is deterministic (bitwise reproducible run to run): no atomics anywhere; each
output element is written by exactly one program, which sums in a fixed (sorted-edge) order.
Backward passes that would scatter into source nodes run over the transposed CSR instead
(``rowptr_t``, ``col_t``, ``perm_t``). Accumulation is float32 (float64 for float64 inputs);
outputs are cast to the input dtype. The kernels are written for image graphs (bounded,
regular degree): a block of target rows loops to its largest degree, so one very high-degree
node slows its block down but stays exact.

Launchers validate dtype, shape and device before any launch (``TypeError`` / ``ValueError``
/ ``RuntimeError`` naming the argument), make inputs contiguous, handle empty graphs, and check
index ranges (``IndexError``) when :func:`graphvision._checks.sync_checks_enabled`, once per
index tensor (one host synchronisation; cached until the tensor changes).
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
