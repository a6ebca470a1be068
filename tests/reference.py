"""Naive plain-loop oracles for graphvision.ops.

Written from the op definitions (DEVELOPING.md, issue 3) with Python loops over edges and
nodes, in float64, and never edited to match an implementation. Each takes the caller's
``edge_index`` order (no sorting) and returns float64 tensors. Inputs may require grad: the
loops are built from differentiable tensor ops, so ``torch.autograd.grad`` through them gives
the reference gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _f64(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.to(torch.float64)


def ref_scatter(src: Tensor, index: Tensor, dim_size: int, reduce: str) -> Tensor:
    """out[i] = reduce over {e : index[e] == i} of src[e]; empty rows 0."""
    src = _f64(src)
    rows = []
    for i in range(dim_size):
        members = [src[e] for e in range(src.size(0)) if int(index[e]) == i]
        if not members:
            rows.append(torch.zeros(src.shape[1:], dtype=torch.float64))
            continue
        stacked = torch.stack(members)
        if reduce == "sum":
            rows.append(stacked.sum(0))
        elif reduce == "mean":
            rows.append(stacked.sum(0) / len(members))
        elif reduce == "max":
            rows.append(stacked.max(0).values)
        elif reduce == "min":
            rows.append(stacked.min(0).values)
        else:
            raise ValueError(reduce)
    if not rows:
        return torch.zeros((0,) + tuple(src.shape[1:]), dtype=torch.float64)
    return torch.stack(rows)


def ref_spmm(edge_index: Tensor, edge_weight: Tensor | None, x: Tensor, num_nodes: int) -> Tensor:
    """out[i] = sum over edges j->i of w * x[j]; weight (E,) or (E, K) for x (N, K, F)."""
    x = _f64(x)
    w = _f64(edge_weight)
    out = [torch.zeros(x.shape[1:], dtype=torch.float64) for _ in range(num_nodes)]
    for e in range(edge_index.size(1)):
        j, i = int(edge_index[0, e]), int(edge_index[1, e])
        msg = x[j]
        if w is not None:
            we = w[e]
            msg = msg * (we[:, None] if we.dim() == 1 else we)
        out[i] = out[i] + msg
    if num_nodes == 0:
        return torch.zeros((0,) + tuple(x.shape[1:]), dtype=torch.float64)
    return torch.stack(out)


def ref_segment_softmax(scores: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Softmax over the scores sharing an index, per column; loops over segments."""
    s = _f64(scores)
    s2 = s if s.dim() == 2 else s[:, None]
    out = [None] * s2.size(0)
    for i in range(num_segments):
        members = [e for e in range(s2.size(0)) if int(index[e]) == i]
        if not members:
            continue
        block = torch.stack([s2[e] for e in members])  # (m, K)
        mx = block.max(0).values.detach()
        ex = torch.exp(block - mx)
        sm = ex / ex.sum(0)
        for r, e in enumerate(members):
            out[e] = sm[r]
    if s2.size(0) == 0:
        return s.clone()
    res = torch.stack(out)
    return res if s.dim() == 2 else res[:, 0]


def ref_attention_aggregate(
    x: Tensor,
    score_src: Tensor,
    score_dst: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor | None = None,
    negative_slope: float = 0.2,
) -> tuple[Tensor, Tensor]:
    """GAT aggregation from the definition: per target node, loop over its incoming edges.

    Returns ``(out (N, K, F), attn (E, K))`` in the caller's edge order.
    """
    x, a_s, a_d, w = _f64(x), _f64(score_src), _f64(score_dst), _f64(edge_weight)
    n, k = a_d.shape
    f = x.size(2)
    e_total = edge_index.size(1)
    attn: list[Tensor | None] = [None] * e_total
    out = []
    for i in range(n):
        members = [e for e in range(e_total) if int(edge_index[1, e]) == i]
        if not members:
            out.append(torch.zeros(k, f, dtype=torch.float64))
            continue
        logits = []
        for e in members:
            z = a_s[int(edge_index[0, e])] + a_d[i]
            logits.append(torch.where(z > 0, z, z * negative_slope))
        lg = torch.stack(logits)  # (m, K)
        mx = lg.max(0).values.detach()
        ex = torch.exp(lg - mx)
        a = ex / ex.sum(0)
        acc = torch.zeros(k, f, dtype=torch.float64)
        for r, e in enumerate(members):
            attn[e] = a[r]
            coef = a[r]
            if w is not None:
                coef = coef * (w[e] if w.dim() == 2 else w[e].expand(k))
            acc = acc + coef[:, None] * x[int(edge_index[0, e])]
        out.append(acc)
    out_t = torch.stack(out) if out else torch.zeros(0, k, f, dtype=torch.float64)
    attn_t = torch.stack(attn) if e_total else torch.zeros(0, k, dtype=torch.float64)
    return out_t, attn_t


def ref_attention_pool(x: Tensor, gate: Tensor, batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
    """Softmax of the gate within each graph and the weighted sum of node features.

    Returns ``(out (B, K, F) or (B, F), weights like gate)``.
    """
    x, g = _f64(x), _f64(gate)
    g2 = g if g.dim() == 2 else g[:, None]
    k = g2.size(1)
    weights: list[Tensor | None] = [None] * x.size(0)
    out = []
    for b in range(num_graphs):
        members = [i for i in range(x.size(0)) if int(batch[i]) == b]
        if not members:
            out.append(torch.zeros(k, x.size(1), dtype=torch.float64))
            continue
        block = torch.stack([g2[i] for i in members])
        ex = torch.exp(block - block.max(0).values.detach())
        a = ex / ex.sum(0)
        acc = torch.zeros(k, x.size(1), dtype=torch.float64)
        for r, i in enumerate(members):
            weights[i] = a[r]
            acc = acc + a[r][:, None] * x[i][None, :]
        out.append(acc)
    out_t = torch.stack(out) if out else torch.zeros(0, k, x.size(1), dtype=torch.float64)
    w_t = torch.stack(weights) if x.size(0) else torch.zeros(0, k, dtype=torch.float64)
    if g.dim() == 1:
        return out_t[:, 0], w_t[:, 0]
    return out_t, w_t


def ref_csr(edge_index: Tensor, num_nodes: int) -> tuple[list[int], list[int], list[int]]:
    """Target-sorted CSR by counting, with a stable order: (rowptr, col, perm) as lists."""
    e_total = edge_index.size(1)
    buckets: list[list[int]] = [[] for _ in range(num_nodes)]
    for e in range(e_total):
        buckets[int(edge_index[1, e])].append(e)
    rowptr = [0]
    perm: list[int] = []
    for b in buckets:
        perm.extend(b)
        rowptr.append(len(perm))
    col = [int(edge_index[0, e]) for e in perm]
    return rowptr, col, perm


def leaky(z: float, slope: float) -> float:
    """Scalar LeakyReLU (for hand-written expectations)."""
    return z if z > 0 else z * slope


def softmax_list(values: list[float]) -> list[float]:
    """Scalar softmax (for hand-written expectations)."""
    m = max(values)
    ex = [math.exp(v - m) for v in values]
    s = sum(ex)
    return [v / s for v in ex]
