"""``torch.library`` registration of the ops, with autograd and fake (meta) kernels.

Each op takes the canonical target-sorted form and a ``backend`` string; its implementation
looks the kernel up in :mod:`graphvision.ops._dispatch`. Because the ops are opaque custom ops
with fake kernels, ``torch.compile(fullgraph=True)`` traces through them and
``torch.library.opcheck`` passes; the backward formulas are built from the same ops, so the
backward runs on the same backend as the forward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from graphvision.ops._composed import Primitives, acc_dtype, score_grads
from graphvision.ops._dispatch import get_kernel
from graphvision.structure import row_index, transpose_csr

__all__: list[str] = []

_NS = "graphvision"


def _kernel(name: str, backend: str):  # noqa: ANN202
    fn = get_kernel(name, backend)
    if fn is None:  # resolve_backend checked this already; keep a clear message anyway
        raise RuntimeError(f"graphvision.ops: backend {backend!r} has no kernel {name!r}")
    return fn


# --------------------------------------------------------------------------- spmm
@torch.library.custom_op(f"{_NS}::spmm", mutates_args=())
def _spmm(
    rowptr: Tensor,
    col: Tensor,
    weight: Tensor | None,
    x: Tensor,
    rowptr_t: Tensor | None,
    col_t: Tensor | None,
    perm_t: Tensor | None,
    backend: str,
) -> Tensor:
    return _kernel("spmm_csr", backend)(rowptr, col, weight, x)


@_spmm.register_fake
def _(rowptr, col, weight, x, rowptr_t, col_t, perm_t, backend):  # noqa: ANN001, ANN202
    return x.new_empty(rowptr.shape[0] - 1, x.shape[1], x.shape[2])


def _spmm_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    rowptr, col, weight, x, rowptr_t, col_t, perm_t, backend = inputs
    ctx.backend = backend
    ctx.weight_none = weight is None
    ctx.save_for_backward(rowptr, col, weight, x, rowptr_t, col_t, perm_t)


def _spmm_backward(ctx, grad: Tensor):  # noqa: ANN001, ANN202
    rowptr, col, weight, x, rowptr_t, col_t, perm_t = ctx.saved_tensors
    backend = ctx.backend
    grad_x = grad_w = None
    if ctx.needs_input_grad[3]:
        if rowptr_t is None or col_t is None or perm_t is None:
            rowptr_t, col_t, perm_t = transpose_csr(rowptr, col, x.size(0))
        w_t = None if weight is None else weight.index_select(0, perm_t)
        # perm of the transpose's transpose: the inverse of perm_t (needed only for double backward).
        inv = torch.empty_like(perm_t).scatter_(0, perm_t, torch.arange(perm_t.numel(), device=perm_t.device))
        grad_x = torch.ops.graphvision.spmm(rowptr_t, col_t, w_t, grad.contiguous(), rowptr, col, inv, backend)
    if weight is not None and ctx.needs_input_grad[2]:
        g = torch.ops.graphvision.sddmm(rowptr, col, grad.contiguous(), x, backend)
        grad_w = g.sum(1) if weight.dim() == 1 else g
        grad_w = grad_w.to(weight.dtype)
    return None, None, grad_w, grad_x, None, None, None, None


_spmm.register_autograd(_spmm_backward, setup_context=_spmm_setup)


# --------------------------------------------------------------------------- sddmm
@torch.library.custom_op(f"{_NS}::sddmm", mutates_args=())
def _sddmm(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor, backend: str) -> Tensor:
    return _kernel("sddmm_csr", backend)(rowptr, col, a, b)


@_sddmm.register_fake
def _(rowptr, col, a, b, backend):  # noqa: ANN001, ANN202
    return a.new_empty(col.shape[0], a.shape[1])


def _sddmm_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    rowptr, col, a, b, backend = inputs
    ctx.backend = backend
    ctx.save_for_backward(rowptr, col, a, b)


def _sddmm_backward(ctx, grad: Tensor):  # noqa: ANN001, ANN202
    # out[p, k] = <a[dst(p), k], b[col(p), k]>: grad_a = A_g @ b, grad_b = A_g^T @ a, with A_g
    # the CSR carrying the per-edge, per-head gradient (the spmm op, so this differentiates again).
    rowptr, col, a, b = ctx.saved_tensors
    g = grad.contiguous()
    grad_a = grad_b = None
    rowptr_t, col_t, perm_t = transpose_csr(rowptr, col, b.size(0))
    inv = torch.empty_like(perm_t).scatter_(0, perm_t, torch.arange(perm_t.numel(), device=perm_t.device))
    if ctx.needs_input_grad[2]:
        grad_a = torch.ops.graphvision.spmm(rowptr, col, g, b, rowptr_t, col_t, perm_t, ctx.backend)
    if ctx.needs_input_grad[3]:
        grad_b = torch.ops.graphvision.spmm(rowptr_t, col_t, g.index_select(0, perm_t), a, rowptr, col, inv, ctx.backend)
    return None, None, grad_a, grad_b, None


_sddmm.register_autograd(_sddmm_backward, setup_context=_sddmm_setup)


# --------------------------------------------------------------------------- segment softmax
@torch.library.custom_op(f"{_NS}::segment_softmax", mutates_args=())
def _segment_softmax(rowptr: Tensor, scores: Tensor, backend: str) -> Tensor:
    return _kernel("segment_softmax_csr", backend)(rowptr, scores)


@_segment_softmax.register_fake
def _(rowptr, scores, backend):  # noqa: ANN001, ANN202
    return torch.empty_like(scores)


@torch.library.custom_op(f"{_NS}::segment_softmax_backward", mutates_args=())
def _segment_softmax_backward(rowptr: Tensor, out: Tensor, grad: Tensor, backend: str) -> Tensor:
    return _kernel("segment_softmax_backward_csr", backend)(rowptr, out, grad)


@_segment_softmax_backward.register_fake
def _(rowptr, out, grad, backend):  # noqa: ANN001, ANN202
    return torch.empty_like(out)


def _softmax_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    rowptr, _, backend = inputs
    ctx.backend = backend
    ctx.save_for_backward(rowptr, output)


def _softmax_backward(ctx, grad: Tensor):  # noqa: ANN001, ANN202
    rowptr, out = ctx.saved_tensors
    return None, torch.ops.graphvision.segment_softmax_backward(rowptr, out, grad.contiguous(), ctx.backend), None


_segment_softmax.register_autograd(_softmax_backward, setup_context=_softmax_setup)


def _softmax_bwd_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    rowptr, out, grad, backend = inputs
    ctx.backend = backend
    ctx.save_for_backward(rowptr, out, grad)


def _softmax_bwd_backward(ctx, gg: Tensor):  # noqa: ANN001, ANN202
    # y = o * (g - s), s = sum_row(o * g):  dy/dg . gg = o*gg - o * sum_row(o*gg) = softmax_bwd(o, gg);
    # dy/do . gg = gg*(g - s) - g * sum_row(o*gg) ... expressed with plain ops.
    rowptr, out, grad = ctx.saved_tensors
    e = out.size(0)
    row = row_index(rowptr.long(), e)
    n = rowptr.numel() - 1
    s = out.new_zeros(n, out.size(1)).index_add_(0, row, out * grad)[row]
    t = out.new_zeros(n, out.size(1)).index_add_(0, row, out * gg)[row]
    d_out = gg * (grad - s) - grad * t
    d_grad = torch.ops.graphvision.segment_softmax_backward(rowptr, out, gg.contiguous(), ctx.backend)
    return None, d_out, d_grad, None


_segment_softmax_backward.register_autograd(_softmax_bwd_backward, setup_context=_softmax_bwd_setup)


# --------------------------------------------------------------------------- segment reduce
@torch.library.custom_op(f"{_NS}::segment_reduce", mutates_args=())
def _segment_reduce(rowptr: Tensor, src: Tensor, reduce: str, backend: str) -> tuple[Tensor, Tensor]:
    out, arg = _kernel("segment_reduce_csr", backend)(rowptr, src, reduce)
    if arg is None:
        arg = torch.empty(0, dtype=torch.int64, device=src.device)
    return out, arg


@_segment_reduce.register_fake
def _(rowptr, src, reduce, backend):  # noqa: ANN001, ANN202
    out = src.new_empty((rowptr.shape[0] - 1,) + tuple(src.shape[1:]))
    if reduce in ("max", "min"):
        arg = torch.empty(out.shape, dtype=torch.int64, device=src.device)
    else:
        arg = torch.empty(0, dtype=torch.int64, device=src.device)
    return out, arg


def _reduce_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    rowptr, src, reduce, _ = inputs
    ctx.reduce = reduce
    ctx.num_edges = src.size(0)
    ctx.save_for_backward(rowptr, output[1])


def _reduce_backward(ctx, grad: Tensor, _grad_arg: Tensor | None):  # noqa: ANN001, ANN202
    rowptr, arg = ctx.saved_tensors
    e = ctx.num_edges
    rowptr = rowptr.long()
    if ctx.reduce in ("sum", "mean"):
        row = row_index(rowptr, e)
        g = grad[row]
        if ctx.reduce == "mean":
            cnt = (rowptr[1:] - rowptr[:-1]).clamp(min=1).to(grad.dtype)
            g = g / cnt[row].view((e,) + (1,) * (grad.dim() - 1))
        return None, g, None, None
    out = grad.new_zeros((e + 1,) + tuple(grad.shape[1:]))
    idx = torch.where(arg < 0, torch.full_like(arg, e), arg)
    out = out.scatter(0, idx, grad)
    return None, out[:e], None, None


_segment_reduce.register_autograd(_reduce_backward, setup_context=_reduce_setup)


# --------------------------------------------------------------------------- attention
def _op_primitives(backend: str) -> Primitives:
    """The registered ops of ``backend`` as the primitives of :mod:`graphvision.ops._composed`."""
    ops = torch.ops.graphvision
    return Primitives(
        spmm_csr=lambda rowptr, col, w, x: ops.spmm(rowptr, col, w, x, None, None, None, backend),
        sddmm_csr=lambda rowptr, col, a, b: ops.sddmm(rowptr, col, a, b, backend),
        segment_softmax_csr=lambda rowptr, scores: ops.segment_softmax(rowptr, scores, backend),
        segment_softmax_backward_csr=lambda rowptr, out, grad: ops.segment_softmax_backward(
            rowptr, out, grad.contiguous(), backend
        ),
        segment_reduce_csr=lambda rowptr, src, reduce: ops.segment_reduce(rowptr, src.contiguous(), reduce, backend),
    )


@torch.library.custom_op(f"{_NS}::attention", mutates_args=())
def _attention(
    rowptr: Tensor,
    col: Tensor,
    rowptr_t: Tensor | None,
    col_t: Tensor | None,
    perm_t: Tensor | None,
    x: Tensor,
    score_src: Tensor,
    score_dst: Tensor,
    weight: Tensor | None,
    negative_slope: float,
    backend: str,
) -> tuple[Tensor, Tensor]:
    return _kernel("attention_forward_csr", backend)(rowptr, col, x, score_src, score_dst, weight, negative_slope)


@_attention.register_fake
def _(rowptr, col, rowptr_t, col_t, perm_t, x, score_src, score_dst, weight, negative_slope, backend):  # noqa: ANN001, ANN202
    return x.new_empty(rowptr.shape[0] - 1, x.shape[1], x.shape[2]), x.new_empty(col.shape[0], x.shape[1])


def _attention_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    rowptr, col, rowptr_t, col_t, perm_t, x, score_src, score_dst, weight, negative_slope, backend = inputs
    ctx.set_materialize_grads(False)  # an unused attention output brings no gradient work
    ctx.negative_slope = negative_slope
    ctx.backend = backend
    ctx.save_for_backward(rowptr, col, rowptr_t, col_t, perm_t, x, score_src, score_dst, weight, output[1])


@torch.library.custom_op(f"{_NS}::attention_backward", mutates_args=())
def _attention_bwd_op(
    rowptr: Tensor,
    col: Tensor,
    rowptr_t: Tensor,
    col_t: Tensor,
    perm_t: Tensor,
    x: Tensor,
    score_src: Tensor,
    score_dst: Tensor,
    weight: Tensor | None,
    attn: Tensor,
    grad_out: Tensor,
    negative_slope: float,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    kernel = _kernel("attention_backward_csr", backend)
    gx, gas, gad, gw = kernel(
        rowptr, col, rowptr_t, col_t, perm_t, x, score_src, score_dst, weight, attn, grad_out, negative_slope
    )
    if gw is None:
        gw = x.new_empty(0)
    return gx, gas, gad, gw


@_attention_bwd_op.register_fake
def _(rowptr, col, rowptr_t, col_t, perm_t, x, score_src, score_dst, weight, attn, grad_out, slope, backend):  # noqa: ANN001, ANN202
    gw = x.new_empty(0) if weight is None else torch.empty_like(weight)
    return torch.empty_like(x), torch.empty_like(score_src), torch.empty_like(score_dst), gw


def _attention_backward(ctx, grad_out: Tensor | None, grad_attn: Tensor | None):  # noqa: ANN001, ANN202
    rowptr, col, rowptr_t, col_t, perm_t, x, score_src, score_dst, weight, attn = ctx.saved_tensors
    slope = ctx.negative_slope
    if grad_out is None:
        grad_out = x.new_zeros(rowptr.numel() - 1, x.size(1), x.size(2))
    if rowptr_t is None or col_t is None or perm_t is None:
        rowptr_t, col_t, perm_t = transpose_csr(rowptr, col, x.size(0))
    grad_x, grad_as, grad_ad, grad_w = torch.ops.graphvision.attention_backward(
        rowptr, col, rowptr_t, col_t, perm_t, x, score_src, score_dst, weight, attn, grad_out.contiguous(), slope,
        ctx.backend,
    )
    if weight is None:
        grad_w = None
    if grad_attn is not None:
        # The attention coefficients were returned and used: their gradient goes through the
        # composed score gradient (softmax backward, LeakyReLU, segment sums), on this backend's ops.
        ga, gd = score_grads(
            _op_primitives(ctx.backend), (rowptr, col), (rowptr_t, col_t, perm_t), (score_src, score_dst), attn,
            grad_attn.contiguous(), slope,
        )
        grad_as = grad_as + ga.to(grad_as.dtype)
        grad_ad = grad_ad + gd.to(grad_ad.dtype)
    return None, None, None, None, None, grad_x, grad_as, grad_ad, grad_w, None, None


_attention.register_autograd(_attention_backward, setup_context=_attention_setup)


def _no_double_backward(op: str, hint: str):  # noqa: ANN202
    def backward(ctx, *grads):  # noqa: ANN001, ANN002, ANN202
        raise RuntimeError(
            f"graphvision: double backward (a gradient of a gradient) through {op} is not supported; {hint}"
        )

    return backward


_attention_bwd_op.register_autograd(
    _no_double_backward(
        "attention_aggregate (the fused attention backward)",
        "compose the attention from graphvision.ops.segment_softmax and graphvision.ops.spmm, which support it",
    ),
    setup_context=lambda ctx, inputs, output: None,
)


# --------------------------------------------------------------------------- attention pool
@torch.library.custom_op(f"{_NS}::global_attention_pool", mutates_args=())
def _attention_pool(ptr: Tensor, x: Tensor, gate: Tensor, backend: str) -> tuple[Tensor, Tensor]:
    return _kernel("attention_pool_ptr", backend)(ptr, x, gate)


@_attention_pool.register_fake
def _(ptr, x, gate, backend):  # noqa: ANN001, ANN202
    return x.new_empty(ptr.shape[0] - 1, gate.shape[1], x.shape[1]), torch.empty_like(gate)


def _pool_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    ptr, x, gate, backend = inputs
    ctx.set_materialize_grads(False)
    ctx.backend = backend
    ctx.save_for_backward(ptr, x, output[1])


def _pool_backward(ctx, grad_out: Tensor | None, grad_weights: Tensor | None):  # noqa: ANN001, ANN202
    ptr, x, w = ctx.saved_tensors
    n, f = x.shape
    k = w.size(1)
    b = ptr.numel() - 1
    if grad_out is None:
        grad_out = x.new_zeros(b, k, f)
    row = row_index(ptr.long(), n)
    go = grad_out[row]  # (N, K, F): N-sized, not E-sized
    acc = acc_dtype(x.dtype)
    grad_x = torch.einsum("nk,nkf->nf", w.to(acc), go.to(acc)).to(x.dtype)
    gw = torch.einsum("nkf,nf->nk", go.to(acc), x.to(acc))
    if grad_weights is not None:
        gw = gw + grad_weights.to(acc)
    grad_gate = torch.ops.graphvision.segment_softmax_backward(ptr, w, gw.to(w.dtype).contiguous(), ctx.backend)
    return None, grad_x, grad_gate, None


_attention_pool.register_autograd(_pool_backward, setup_context=_pool_setup)


# --------------------------------------------------------------------------- MI joint entropy
@torch.library.custom_op(f"{_NS}::joint_entropy", mutates_args=())
def _joint_entropy(a: Tensor, chunk: int, backend: str) -> Tensor:
    return _kernel("joint_entropy_dense", backend)(a, chunk).to(a.dtype)


@_joint_entropy.register_fake
def _(a, chunk, backend):  # noqa: ANN001, ANN202
    return a.new_empty(a.shape[0], a.shape[1], a.shape[1])


@torch.library.custom_op(f"{_NS}::joint_entropy_backward", mutates_args=())
def _joint_entropy_bwd(a: Tensor, grad: Tensor, chunk: int, backend: str) -> Tensor:
    return _kernel("joint_entropy_dense_backward", backend)(a, grad, chunk).to(a.dtype)


@_joint_entropy_bwd.register_fake
def _(a, grad, chunk, backend):  # noqa: ANN001, ANN202
    return torch.empty_like(a)


def _joint_entropy_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    a, chunk, backend = inputs
    ctx.chunk, ctx.backend = chunk, backend
    ctx.save_for_backward(a)


def _joint_entropy_backward(ctx, grad: Tensor):  # noqa: ANN001, ANN202
    (a,) = ctx.saved_tensors
    return torch.ops.graphvision.joint_entropy_backward(a, grad.contiguous(), ctx.chunk, ctx.backend), None, None


_joint_entropy.register_autograd(_joint_entropy_backward, setup_context=_joint_entropy_setup)
_joint_entropy_bwd.register_autograd(
    _no_double_backward("mutual_information_adjacency (the chunked joint-entropy backward)", "use first-order gradients"),
    setup_context=lambda ctx, inputs, output: None,
)


# --------------------------------------------------------------------------- checks under compile
@torch.library.custom_op(f"{_NS}::checked_edge_index", mutates_args=())
def _checked_edge_index(edge_index: Tensor, num_src: int, num_dst: int) -> Tensor:
    """A copy of ``edge_index`` after checking its range (raises ``IndexError`` when out of range).

    Compiled graphs cannot run Python checks while tracing; this opaque op runs the same check
    when the compiled graph runs, so a bad index under ``torch.compile`` gets the eager error
    instead of a crash or garbage.
    """
    from graphvision import _checks

    _checks.check_edge_index_range(edge_index, num_src, num_dst)
    return edge_index.clone()


@_checked_edge_index.register_fake
def _(edge_index, num_src, num_dst):  # noqa: ANN001, ANN202
    return torch.empty_like(edge_index)
