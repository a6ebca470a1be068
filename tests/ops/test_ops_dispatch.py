"""Backend choice and input validation of graphvision.ops."""

from __future__ import annotations

import pytest
import torch

from graphvision import GraphStructure, config, ops
from graphvision.ops import _dispatch
from graphvision.testing import assert_close

EI = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])


# --------------------------------------------------------------------------- backend choice
def test_auto_is_torch_on_cpu_even_under_triton_interpret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.delenv("GRAPHVISION_BACKEND", raising=False)
    for op in _dispatch.KERNELS:
        assert _dispatch.resolve_backend(op, torch.device("cpu")) == "torch"


def test_env_and_context_manager_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHVISION_BACKEND", "torch")
    assert _dispatch.resolve_backend("spmm_csr", torch.device("cpu")) == "torch"
    with config.use_backend("auto"):
        assert _dispatch.resolve_backend("spmm_csr", torch.device("cpu")) == "torch"
    monkeypatch.setenv("GRAPHVISION_BACKEND", "not_a_backend")
    with pytest.raises(ValueError, match="not_a_backend"):
        ops.spmm(EI, None, torch.randn(3, 2))


def test_explicit_backend_that_cannot_run_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dispatch, "_library_missing", lambda b: f"{b} is not installed (simulated)")
    with pytest.raises(RuntimeError, match="torch_scatter.*not installed"):
        ops.spmm(EI, None, torch.randn(3, 2), backend="torch_scatter")
    with config.use_backend("torch_sparse"), pytest.raises(RuntimeError, match="torch_sparse"):
        ops.segment_softmax(torch.randn(4), EI[1], 3)


def test_explicit_triton_on_cpu_without_interpreter_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="triton"):
        ops.spmm(EI, None, torch.randn(3, 2), backend="triton")


def test_unknown_backend_name() -> None:
    with pytest.raises(ValueError, match="Unknown backend 'cuda_magic'"):
        ops.spmm(EI, None, torch.randn(3, 2), backend="cuda_magic")


def test_triton_kernels_are_found_by_contract_name() -> None:
    pytest.importorskip("triton")
    for op in ("spmm_csr", "attention_forward_csr", "attention_backward_csr", "segment_softmax_csr"):
        fn = _dispatch.get_kernel(op, "triton")
        assert fn is not None and fn.__name__ == op


@pytest.mark.triton_interpret
def test_triton_backend_through_public_api_matches_torch() -> None:
    """Every public op routed to the Triton kernels (interpreter on the CPU), forward and backward."""
    pytest.importorskip("triton")
    from graphvision.ops import _triton

    if not _triton.triton_usable(torch.device("cpu")):
        pytest.skip("Triton interpreter not active")

    def run(backend: str) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(3, 2, 4, generator=g).requires_grad_(True)
        a_s = torch.randn(3, 2, generator=g).requires_grad_(True)
        a_d = torch.randn(3, 2, generator=g).requires_grad_(True)
        w = (torch.rand(4, generator=g) + 0.5).requires_grad_(True)
        out, att = ops.attention_aggregate(x, a_s, a_d, EI, w, return_attention_weights=True, backend=backend)
        y = ops.spmm(EI, w, x, backend=backend)
        s = ops.segment_softmax(a_s[:, :1].expand(3, 2).reshape(-1)[:4], EI[1], 3, backend=backend)
        m = ops.scatter(att, EI[1], 3, "max", backend=backend)
        p = ops.global_attention_pool(x[:, 0], a_s, torch.tensor([0, 0, 1]), 2, backend=backend)
        outs = [out, att, y, s, m, p]
        loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
        return outs + list(torch.autograd.grad(loss, [x, a_s, a_d, w]))

    for got, want in zip(run("triton"), run("torch")):
        assert_close(got, want)


def test_available_backends_lists_torch() -> None:
    assert "torch" in ops.available_backends("cpu")
    assert "triton" not in _dispatch.AUTO_ORDER["cpu"]


def test_auto_on_cuda_uses_triton_only_where_a_gpu_run_validated_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend Triton can run on CUDA: auto must still pick torch for the kernels that have not
    # been checked and timed on a GPU, and Triton for the segment softmax, which has.
    from graphvision.ops import _triton

    if not _triton.HAS_TRITON:
        pytest.skip("Triton is not installed")
    monkeypatch.setattr(_triton, "unusable_reason", lambda device: None)
    cuda = torch.device("cuda")
    assert _dispatch.resolve_backend("segment_softmax_csr", cuda, "auto") == "triton"
    for op in ("spmm_csr", "sddmm_csr", "attention_forward_csr", "segment_reduce_csr", "attention_pool_ptr"):
        assert _dispatch.resolve_backend(op, cuda, "auto") == "torch", op
    assert _dispatch.resolve_backend("spmm_csr", cuda, "triton") == "triton"  # still there when asked for


# --------------------------------------------------------------------------- validation
def test_index_out_of_range() -> None:
    with pytest.raises(IndexError, match=r"edge_index\[1\].*outside of \[0, 3\)"):
        ops.spmm(torch.tensor([[0], [5]]), None, torch.randn(3, 2))
    with pytest.raises(IndexError, match=r"edge_index\[0\]"):
        ops.attention_aggregate(torch.randn(3, 1, 2), torch.randn(3, 1), torch.randn(3, 1), torch.tensor([[-1], [0]]))
    with pytest.raises(IndexError, match="index"):
        ops.scatter(torch.randn(2, 3), torch.tensor([0, 4]), 3)
    with pytest.raises(IndexError, match="batch"):
        ops.global_attention_pool(torch.randn(2, 3), torch.randn(2), torch.tensor([0, 2]), 2)
    with pytest.raises(IndexError, match="index"):
        ops.segment_softmax(torch.randn(2), torch.tensor([0, 2]), 2)


def test_wrong_shapes() -> None:
    x = torch.randn(3, 2, 4)
    with pytest.raises(ValueError, match=r"'edge_index' of shape \(2, E\)"):
        ops.spmm(torch.zeros(3, 4, dtype=torch.long), None, x)
    with pytest.raises(ValueError, match=r"'edge_weight' of shape \(4,\) or \(4, 2\)"):
        ops.spmm(EI, torch.rand(5), x)
    with pytest.raises(ValueError, match=r"'x' of shape \(N, F\) or \(N, K, F\)"):
        ops.spmm(EI, None, torch.randn(3))
    with pytest.raises(ValueError, match="score_src"):
        ops.attention_aggregate(x, torch.randn(3, 3), torch.randn(3, 2), EI)
    with pytest.raises(ValueError, match="score_dst"):
        ops.attention_aggregate(x, torch.randn(3, 2), torch.randn(3), EI)
    with pytest.raises(ValueError, match="num_nodes"):
        ops.attention_aggregate(x, torch.randn(3, 2), torch.randn(3, 2), EI, num_nodes=4)
    with pytest.raises(ValueError, match="'index' of shape"):
        ops.scatter(torch.randn(4, 2), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="'gate' of shape"):
        ops.global_attention_pool(torch.randn(4, 2), torch.randn(3), None)
    with pytest.raises(ValueError, match="reduce"):
        ops.scatter(torch.randn(4, 2), EI[1], 3, reduce="prod")
    with pytest.raises(ValueError, match="GraphStructure"):
        ops.spmm(GraphStructure(EI, 3), None, torch.randn(4, 2))


def test_wrong_dtypes() -> None:
    x = torch.randn(3, 2, 4)
    with pytest.raises(TypeError, match="edge_index.*int64 or torch.int32.*float32"):
        ops.spmm(EI.float(), None, x)
    with pytest.raises(TypeError, match="'edge_weight' of the same dtype as 'x'"):
        ops.spmm(EI, torch.rand(4, dtype=torch.float64), x)
    with pytest.raises(TypeError, match="'score_src' of the same dtype"):
        ops.attention_aggregate(x, torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2), EI)
    with pytest.raises(TypeError, match="'x' of a floating dtype"):
        ops.spmm(EI, None, torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="index"):
        ops.segment_softmax(torch.randn(4), EI[1].float(), 3)


def test_mismatched_devices() -> None:
    meta_x = torch.empty(3, 2, 4, device="meta")
    with pytest.raises(ValueError, match="same device"):
        ops.spmm(EI, None, meta_x)
    with pytest.raises(ValueError, match="same device"):
        ops.attention_aggregate(torch.randn(3, 2, 4), torch.randn(3, 2), torch.empty(3, 2, device="meta"), EI)
    with pytest.raises(ValueError, match="same device"):
        ops.scatter(torch.randn(4, 2), EI[1].to("meta"), 3)
