"""Global configuration: kernel backend selection and input checks.

The backend used by :mod:`graphvision.ops` is chosen per call, in this order:

1. the ``backend=`` argument of the op, when given;
2. the innermost :func:`use_backend` context manager;
3. the ``GRAPHVISION_BACKEND`` environment variable (read at every call, so it can be
   changed at run time);
4. ``"auto"``: the fastest available backend for the input's device, as measured in
   ``benchmarks/results/``.

Input checks that need a host synchronisation (index ranges, which need ``index.max()``)
run unless they are switched off with :func:`set_checks` / ``GRAPHVISION_CHECKS=0``, and
never while :func:`torch.compile` traces.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

__all__ = [
    "BACKENDS",
    "get_backend",
    "set_backend",
    "use_backend",
    "checks_enabled",
    "set_checks",
]

#: Backend names accepted by :func:`set_backend`, :func:`use_backend` and the ops' ``backend=``.
BACKENDS: tuple[str, ...] = ("auto", "torch", "triton", "torch_scatter", "torch_sparse")

_state = threading.local()
_global: dict[str, object] = {"backend": None, "checks": None}


def _validate_backend(name: str) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; expected one of {BACKENDS}")
    return name


def get_backend() -> str:
    """Return the backend requested for the current scope.

    Returns:
        The name set by the innermost :func:`use_backend`, else by :func:`set_backend`, else
        ``GRAPHVISION_BACKEND``, else ``"auto"``.
    """
    stack = getattr(_state, "stack", None)
    if stack:
        return stack[-1]
    if _global["backend"] is not None:
        return str(_global["backend"])
    env = os.environ.get("GRAPHVISION_BACKEND")
    if env:
        return _validate_backend(env.strip().lower())
    return "auto"


def set_backend(name: str | None) -> None:
    """Set the process-wide backend (``None`` restores the environment/auto default).

    Args:
        name: One of :data:`BACKENDS`, or ``None``.
    """
    _global["backend"] = None if name is None else _validate_backend(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager that selects a backend for the ops called inside it.

    Args:
        name: One of :data:`BACKENDS`.

    Example:
        >>> import graphvision
        >>> with graphvision.config.use_backend("torch"):
        ...     graphvision.config.get_backend()
        'torch'
    """
    _validate_backend(name)
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(name)
    try:
        yield
    finally:
        stack.pop()


def checks_enabled() -> bool:
    """Whether input checks that synchronise with the device (index ranges) run."""
    if _global["checks"] is not None:
        return bool(_global["checks"])
    return os.environ.get("GRAPHVISION_CHECKS", "1").strip().lower() not in ("0", "false", "no", "off")


def set_checks(enabled: bool | None) -> None:
    """Switch index-range checks on or off process-wide (``None`` restores the default).

    Args:
        enabled: ``True``/``False``, or ``None`` to follow ``GRAPHVISION_CHECKS`` (default on).
    """
    _global["checks"] = None if enabled is None else bool(enabled)
