"""The one place that chooses which backend runs each op.

Kernel table
    :data:`KERNELS` maps each contract function name (see DEVELOPING.md, "Ops contract") to
    ``{backend: implementation}``: an import path ``"module:function"`` for every backend (the
    Triton ones name their ``graphvision/ops/_triton/k_*.py`` file), imported by
    :func:`get_kernel` on first use; a file that fails to import disables only its own kernels,
    with the reason kept for the error message.

Choice of backend, per call (:func:`resolve_backend`)
    1. the op's ``backend=`` argument, else :func:`graphvision.config.use_backend` /
       :func:`graphvision.config.set_backend`, else ``GRAPHVISION_BACKEND``, else ``"auto"``;
    2. ``"auto"`` picks, by device and op, the first *available* backend in
       :data:`AUTO_ORDER_OPS` or :data:`AUTO_ORDER` (from the measurements in
       ``benchmarks/results/`` and ``../shared/PERF.md``): on CPU always ``"torch"`` (the
       sparse-CSR fast path; never Triton, even under ``TRITON_INTERPRET=1``); on CUDA
       ``"triton"`` for the segment softmax (checked and timed on an H200) and ``"torch"`` for
       the other ops (Triton there only with ``backend="triton"``);
    3. an explicitly requested backend that cannot run (not installed, wrong device, no kernel
       for this op) raises ``RuntimeError`` saying why.

Under ``torch.compile`` the choice is made once, while tracing, and is baked into the compiled
graph (a later change of ``GRAPHVISION_BACKEND`` needs a recompile, e.g. ``torch._dynamo.reset()``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from graphvision import config

__all__ = ["KERNELS", "AUTO_ORDER", "AUTO_ORDER_OPS", "get_kernel", "resolve_backend", "backend_unusable_reason", "available_backends"]

BACKEND_NAMES: tuple[str, ...] = ("torch", "triton", "torch_scatter", "torch_sparse")

#: The Triton file that implements each contract function (``graphvision/ops/_triton/<file>.py``).
_TRITON_FILES: dict[str, str] = {
    "spmm_csr": "k_spmm",
    "sddmm_csr": "k_sddmm",
    "segment_softmax_csr": "k_segment_softmax",
    "segment_softmax_backward_csr": "k_segment_softmax",
    "segment_reduce_csr": "k_segment_reduce",
    "attention_forward_csr": "k_attention",
    "attention_backward_csr": "k_attention",
    "attention_pool_ptr": "k_attention_pool",
    "joint_entropy_dense": "k_mutual_information",
    "joint_entropy_dense_backward": "k_mutual_information",
}

#: The ops the torch_scatter / torch_sparse backends implement: the graph ops, not the MI kernel.
_SCATTER_OPS = tuple(name for name in _TRITON_FILES if not name.startswith("joint_entropy"))

#: Op name -> {backend: "module:attr" import path}; every entry is a plain import path, so
#: ``grep`` answers "where does backend X of op Y come from". Imported on first use.
KERNELS: dict[str, dict[str, Callable | str]] = {
    name: {
        "torch": f"graphvision.ops._torch:{name}",
        "triton": f"graphvision.ops._triton.{triton_file}:{name}",
        **(
            {
                "torch_scatter": f"graphvision.ops._scatter_backends:{name}",
                "torch_sparse": f"graphvision.ops._scatter_backends:TORCH_SPARSE.{name}",
            }
            if name in _SCATTER_OPS
            else {}
        ),
    }
    for name, triton_file in _TRITON_FILES.items()
}

#: Backends tried by ``"auto"``, per device type, fastest first. On the CPU ``"torch"`` was the
#: fastest for every op (2-core CPU, B=16 28x28 8-neighbour grid, C=64, K=4, median ms of
#: torch / torch_scatter / torch_sparse): spmm fwd 2.8 / 34.8 / 11.0, fwd+bwd 7.0 / 48.2 / 30.5;
#: attention_aggregate fwd 10.0 / 28.9 / 21.9, fwd+bwd 35.5 / 90.0 / 96.8; segment_softmax
#: 5.6 / 18.3 / 11.3; scatter sum 1.3 / 10.4 / 11.4 (the segment backends sort per call).
#: On CUDA the default is ``"torch"`` too, except where :data:`AUTO_ORDER_OPS` says otherwise.
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cpu": ("torch",),
    "cuda": ("torch",),
}

#: Per-op exceptions to :data:`AUTO_ORDER`, ``(device type, contract name) -> order``. Auto mode
#: picks a Triton kernel on CUDA only where a GPU run checked it against the torch reference and
#: timed it faster (``benchmarks/results/h200_run1_2026-11-28/``, H200, B=64 56x56, K=4):
#: segment_softmax 2.05x torch forward and 2.85x forward+backward. There the Triton scatter
#: was 0.55-0.65x of torch forward+backward and global_attention_pool 0.74-0.99x, so they stay on torch.
#: The Triton spmm, sddmm and attention kernels have not run on a GPU since their sm_90 compile
#: fixes (only compiled ahead of time and run in the interpreter), so they are used only when asked
#: for (``backend="triton"``); ``bash benchmarks/run_gpu.sh`` checks and times them, and its
#: results decide whether they join this table.
AUTO_ORDER_OPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cuda", "segment_softmax_csr"): ("triton", "torch"),
    ("cuda", "segment_softmax_backward_csr"): ("triton", "torch"),
    # The fused MI joint entropy: the same H200 run checked it against a float64 reference
    # (output 6.4e-07, gradient 5.5e-06 max abs difference); its timing did not finish there.
    ("cuda", "joint_entropy_dense"): ("triton", "torch"),
    ("cuda", "joint_entropy_dense_backward"): ("triton", "torch"),
}

_resolved: dict[tuple[str, str], Callable | None] = {}
_missing_reason: dict[tuple[str, str], str] = {}


def _triton_installed(key: tuple[str, str]) -> bool:
    from graphvision.ops import _triton

    if not _triton.HAS_TRITON:
        _missing_reason[key] = f"Triton is not installed ({_triton.TRITON_IMPORT_ERROR})"
    return bool(_triton.HAS_TRITON)


def get_kernel(name: str, backend: str) -> Callable | None:
    """Return the implementation of contract function ``name`` for ``backend`` (None if absent).

    Args:
        name: A contract name, e.g. ``"spmm_csr"``.
        backend: ``"torch"``, ``"triton"``, ``"torch_scatter"`` or ``"torch_sparse"``.
    """
    key = (name, backend)
    if key in _resolved:
        return _resolved[key]
    entry = KERNELS.get(name, {}).get(backend)
    fn: Callable | None
    if entry is None:
        fn = None
        _missing_reason[key] = f"backend {backend!r} has no implementation of {name!r}"
    elif callable(entry):
        fn = entry
    elif backend == "triton" and not _triton_installed(key):
        fn = None
    else:
        mod_name, attr = entry.split(":")
        try:
            fn = importlib.import_module(mod_name)
            for part in attr.split("."):
                fn = getattr(fn, part, None)
            if fn is None:
                _missing_reason[key] = f"{mod_name} has no {attr!r}"
        except Exception as exc:  # a broken kernel file must not break the other backends
            fn = None
            _missing_reason[key] = f"{mod_name} failed to import: {type(exc).__name__}: {exc}"
    _resolved[key] = fn
    return fn


def _library_missing(backend: str) -> str | None:
    if backend == "torch_scatter":
        try:
            import torch_scatter  # noqa: F401
        except Exception as exc:
            return f"torch_scatter is not installed or failed to import ({type(exc).__name__}: {exc})"
    if backend == "torch_sparse":
        try:
            import torch_sparse  # noqa: F401
        except Exception as exc:
            return f"torch_sparse is not installed or failed to import ({type(exc).__name__}: {exc})"
    return None


def backend_unusable_reason(backend: str, device: torch.device, op: str | None = None) -> str | None:
    """Why ``backend`` cannot run ``op`` on ``device`` now, or ``None`` when it can.

    Args:
        backend: A backend name.
        device: The device of the op's inputs.
        op: A contract function name (checked for a kernel when given).
    """
    if backend not in BACKEND_NAMES:
        return f"unknown backend {backend!r}; expected one of {BACKEND_NAMES}"
    if backend == "triton":
        from graphvision.ops import _triton

        reason = _triton.unusable_reason(device)
        if reason is not None:
            return reason
    else:
        reason = _library_missing(backend)
        if reason is not None:
            return reason
    if op is not None and get_kernel(op, backend) is None:
        return _missing_reason.get((op, backend), f"backend {backend!r} has no kernel {op!r}")
    return None


def available_backends(device: torch.device | str = "cpu", op: str = "spmm_csr") -> list[str]:
    """The backends that can run ``op`` on ``device`` in this environment.

    Args:
        device: The device the inputs would live on.
        op: A contract function name (default ``"spmm_csr"``).

    Returns:
        Backend names, in the order ``torch``, ``triton``, ``torch_scatter``, ``torch_sparse``.

    Example:
        >>> "torch" in available_backends("cpu")
        True
    """
    device = torch.device(device)
    return [b for b in BACKEND_NAMES if backend_unusable_reason(b, device, op) is None]


def _assume_constant_result(fn: Callable) -> Callable:
    """Mark ``fn`` as constant for ``torch.compile``, as ``torch.compiler.assume_constant_result`` does.

    ``torch.compiler.assume_constant_result`` imports ``torch._dynamo`` (about 2 s) just to set
    this flag; setting it here keeps ``import graphvision`` cheap. ``tests/test_package.py``
    checks that Dynamo still treats :func:`resolve_backend` as a constant (no graph break).
    """
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn


@_assume_constant_result
def resolve_backend(op: str, device: torch.device, requested: str | None = None) -> str:
    """Choose the backend that runs ``op`` for inputs on ``device``.

    Args:
        op: Contract function name of the op's forward kernel.
        device: Device of the inputs.
        requested: The op's ``backend=`` argument (``None`` follows :mod:`graphvision.config`).

    Returns:
        A backend name that can run here.

    Raises:
        ValueError: for an unknown backend name.
        RuntimeError: when an explicitly requested backend cannot run, with the reason.
    """
    name = config.get_backend() if requested is None else requested
    if name not in config.BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; expected one of {config.BACKENDS}")
    if name != "auto":
        reason = backend_unusable_reason(name, device, op)
        if reason is not None:
            raise RuntimeError(f"graphvision.ops: backend {name!r} cannot run {op!r} on {device}: {reason}")
        return name
    order = AUTO_ORDER_OPS.get((device.type, op), AUTO_ORDER.get(device.type, ("torch",)))
    for cand in order:
        if cand == "triton" and device.type != "cuda":
            continue  # auto never picks the Triton interpreter
        if backend_unusable_reason(cand, device, op) is None:
            return cand
    return "torch"
