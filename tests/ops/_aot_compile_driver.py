"""Compile every Triton kernel ahead of time for sm_90 (H100/H200), on a machine without a GPU.

Run as a script (by tests/ops/test_triton_aot_compile.py) in a fresh process: the kernels are
imported as real ``triton.jit`` functions (TRITON_INTERPRET unset at import), then the launchers
are called on tiny CPU tensors with ``JITFunction.run`` replaced by an ahead-of-time compile for
``GPUTarget("cuda", 90, 32)`` through TTIR, TTGIR, LLVM IR, PTX and cubin. The interpreter does
not run Triton's GPU compiler passes, so this finds kernels that pass every interpreter test but
fail to compile on a GPU (as tiles of shape (32, 1) did with Triton 3.6).

Prints one line per compiled specialisation and ``AOT OK <count>`` at the end; exits 1 on failure.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch

# Importing this module has no side effects (pytest --doctest-modules imports every file under
# tests/): the kernels are imported and JITFunction.run is replaced only by install().
_DT = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64",
       torch.int32: "i32", torch.int64: "i64", torch.bool: "i1", torch.int8: "i8", torch.uint8: "u8"}
seen: set[tuple] = set()
failures: list[str] = []
count = 0


def _aot_run(self, *args, grid=None, warmup=False, **kwargs):  # noqa: ANN001, ANN002, ANN003
    global count
    names = self.arg_names
    bound = dict(zip(names, args))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    sig, consts, attrs = {}, {}, {}
    for i, name in enumerate(names):
        v = bound.get(name)
        if i in self.constexprs:
            sig[name] = "constexpr"
            consts[name] = v
        elif isinstance(v, torch.Tensor):
            sig[name] = "*" + _DT[v.dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]  # as the JIT specialises 16-byte aligned pointers
        elif isinstance(v, bool):
            sig[name] = "i1"
        elif isinstance(v, int) and v == 1:
            sig[name] = "constexpr"  # the JIT specialises integer arguments equal to 1
            consts[name] = 1
        elif isinstance(v, int):
            sig[name] = "i64" if abs(v) >= 2**31 else "i32"
            if v % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        elif isinstance(v, float):
            sig[name] = "fp32"
        elif v is None:
            sig[name] = "constexpr"
            consts[name] = None
        else:
            raise TypeError(f"{self.fn.__name__}: cannot type argument {name}={v!r}")
    key = (
        self.fn.__name__,
        tuple(sorted(sig.items())),
        tuple(sorted((k, str(v)) for k, v in consts.items())),
        tuple(sorted(attrs)),
    )
    if key in seen:
        return None
    seen.add(key)
    opts = {k: kwargs[k] for k in ("num_warps", "num_stages") if k in kwargs}
    shown = {k: v for k, v in consts.items() if k.isupper()}
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    try:
        target = GPUTarget("cuda", 90, 32)
        triton.compile(ASTSource(fn=self, signature=sig, constexprs=consts, attrs=attrs), target=target, options=opts)
    except Exception as exc:  # report every failing specialisation, then fail at the end
        failures.append(f"{self.fn.__name__} {shown}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}")
        print(f"FAILED {failures[-1]}", flush=True)
        return None
    count += 1
    print(f"compiled {self.fn.__name__} {shown}", flush=True)
    return None


def run_aot(argv: list[str], timeout: int = 900) -> str:
    """Run ``python *argv`` in a fresh process without TRITON_INTERPRET, from the repository root.

    For the tests: skips when Triton's ptxas is missing, fails with the output's tail (the
    per-specialisation "compiled" lines left out) when the process fails; returns stdout.
    """
    import subprocess
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=root, timeout=timeout)
    lines = (proc.stdout + proc.stderr).splitlines()
    tail = "\n".join(line for line in lines if not line.startswith("compiled"))[-4000:]
    if proc.returncode != 0 and "ptxas" in tail.lower() and "not found" in tail.lower():
        pytest.skip(f"Triton's ptxas is not available here: {tail[-300:]}")
    assert proc.returncode == 0, tail
    return proc.stdout


def install() -> None:
    """Make Triton kernels imported from now on real JIT functions, whose launches compile for sm_90.

    Call it first thing in a fresh process: it unsets TRITON_INTERPRET (kernels decorated after
    this are compiled, not interpreted), imports the kernel modules, then sets TRITON_INTERPRET=1
    again so the launchers accept CPU tensors.
    """
    os.environ.pop("TRITON_INTERPRET", None)
    warnings.filterwarnings("ignore")
    from triton.runtime.jit import JITFunction

    from graphvision.ops._triton import (  # noqa: F401
        k_attention,
        k_attention_pool,
        k_sddmm,
        k_segment_reduce,
        k_segment_softmax,
        k_spmm,
    )

    os.environ["TRITON_INTERPRET"] = "1"
    JITFunction.run = _aot_run


def csr(n: int, idx: torch.dtype) -> tuple[torch.Tensor, ...]:
    """A small graph on ``n`` nodes: node 0 isolated, every other node receives from two others."""
    dst = torch.arange(1, n).repeat_interleave(2)
    src = torch.stack([(torch.arange(1, n) + 1) % n, (torch.arange(1, n) + 2) % n], 1).reshape(-1)
    rowptr = torch.zeros(n + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n), 0)
    order = torch.argsort(src, stable=True)
    rowptr_t = torch.zeros(n + 1, dtype=torch.int64)
    rowptr_t[1:] = torch.cumsum(torch.bincount(src, minlength=n), 0)
    return rowptr.to(idx), src.to(idx), rowptr_t.to(idx), dst[order].to(idx), order.to(idx)


def main() -> int:
    from graphvision.ops._triton import (
        k_attention,
        k_attention_pool,
        k_sddmm,
        k_segment_reduce,
        k_segment_softmax,
        k_spmm,
    )

    # A few specialisations cover every kernel: width-1 and odd feature/head axes, int32 and
    # int64 indices, float32 and half inputs (each compile takes about a second).
    combos = (
        (3, torch.int64, torch.float32, 1, 1),
        (3, torch.int64, torch.float32, 4, 130),
        (16, torch.int64, torch.bfloat16, 2, 3),
        (3, torch.int32, torch.float16, 1, 64),
        (16, torch.int64, torch.float32, 1, 1024),  # a shared-graph batch folded into features
        (32, torch.int32, torch.float32, 4, 64),
    )
    for n, idx, dtype, heads, feats in combos:
        rowptr, col, rowptr_t, col_t, perm_t = csr(n, idx)
        e = col.numel()
        x = torch.randn(n, heads, feats, dtype=dtype)
        for w in (None, torch.rand(e, dtype=dtype), torch.rand(e, heads, dtype=dtype)):
            k_spmm.spmm_csr(rowptr, col, w, x)
        k_sddmm.sddmm_csr(rowptr, col, x, x)
        scores = torch.randn(e, heads, dtype=dtype)
        sm = k_segment_softmax.segment_softmax_csr(rowptr, scores)
        k_segment_softmax.segment_softmax_backward_csr(rowptr, sm, scores)
        for reduce in ("sum", "max"):
            k_segment_reduce.segment_reduce_csr(rowptr, torch.randn(e, heads * feats, dtype=dtype), reduce)
        a = torch.randn(n, heads, dtype=dtype)
        for w in (None, torch.rand(e, dtype=dtype)):
            out, attn = k_attention.attention_forward_csr(rowptr, col, x, a, a, w, 0.2)
            k_attention.attention_backward_csr(
                rowptr, col, rowptr_t, col_t, perm_t, x, a, a, w, attn, torch.randn_like(out), 0.2
            )
        ptr = torch.tensor([0, 1, n], dtype=idx)
        k_attention_pool.attention_pool_ptr(ptr, x.reshape(n, -1), a)
        # the split path for large graphs (node chunks merged in a fixed order)
        saved = k_attention_pool.NODES_PER_SPLIT
        k_attention_pool.NODES_PER_SPLIT = 1
        try:
            k_attention_pool.attention_pool_ptr(ptr, x.reshape(n, -1), a)
        finally:
            k_attention_pool.NODES_PER_SPLIT = saved
    if failures:
        print(f"AOT FAILED {len(failures)} of {count + len(failures)} specialisations:")
        print("\n".join(failures))
        return 1
    print(f"AOT OK {count}")
    return 0


if __name__ == "__main__":
    install()
    sys.exit(main())
