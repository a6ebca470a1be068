"""Classification metrics without extra dependencies (they match scikit-learn's, zero_division=0)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def confusion_matrix(labels: Sequence[int], preds: Sequence[int], num_classes: int) -> torch.Tensor:
    """``(num_classes, num_classes)`` counts, rows = true class, columns = predicted class."""
    y = torch.as_tensor(list(labels), dtype=torch.long)
    p = torch.as_tensor(list(preds), dtype=torch.long)
    if y.shape != p.shape:
        raise ValueError(f"Expected labels and preds of the same length (got {len(y)} and {len(p)})")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes or int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"Expected class indices in [0, {num_classes}) (got labels/preds outside it)")
    return torch.bincount(y * num_classes + p, minlength=num_classes * num_classes).view(num_classes, num_classes)


def binary_auroc(scores: torch.Tensor, positive: torch.Tensor) -> float | None:
    """Area under the ROC curve of ``scores`` for the boolean ``positive`` (Mann-Whitney, ties count 1/2).

    ``None`` when one of the two groups is empty (undefined).
    """
    pos = positive.bool()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    s = scores.double()
    order = torch.argsort(s)
    sorted_s = s[order]
    ranks = torch.empty_like(s)
    # average ranks over ties (1-based)
    uniq, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    avg = ends - (counts.double() - 1) / 2
    ranks[order] = avg[inverse]
    u = float(ranks[pos].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def auroc(labels: Sequence[int], probs: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """AUROC: binary (score of class 1) or macro one-vs-rest over classes present (scikit-learn's ``ovr``).

    Returns ``{"auroc": float | None, "auroc_per_class": [float | None, ...]}``.
    """
    y = torch.as_tensor(list(labels), dtype=torch.long)
    probs = torch.as_tensor(probs, dtype=torch.float64).reshape(len(y), num_classes)
    per = [binary_auroc(probs[:, c], y == c) for c in range(num_classes)]
    if num_classes == 2:
        return {"auroc": per[1], "auroc_per_class": per}
    defined = [a for a in per if a is not None]
    return {"auroc": sum(defined) / len(defined) if len(defined) >= 2 else None, "auroc_per_class": per}


def classification_metrics(
    labels: Sequence[int],
    preds: Sequence[int],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    probs: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro precision / recall / F1, per class, confusion matrix (+ AUROC).

    Undefined precision/recall/F1 count as 0 (scikit-learn's ``zero_division=0``); balanced
    accuracy is the mean recall over classes present in ``labels`` (scikit-learn's
    ``balanced_accuracy_score``). With ``probs`` ``(N, num_classes)``, AUROC (see :func:`auroc`).
    """
    cm = confusion_matrix(labels, preds, num_classes).double()
    tp = cm.diag()
    pred_pos, true_pos = cm.sum(0), cm.sum(1)
    precision = torch.where(pred_pos > 0, tp / pred_pos.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(true_pos > 0, tp / true_pos.clamp_min(1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(tp))
    total = float(cm.sum())
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    present = true_pos > 0
    out = {
        "accuracy": float(tp.sum()) / total if total else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if bool(present.any()) else 0.0,
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "num_samples": int(total),
        "per_class": {
            names[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(true_pos[i]),
            }
            for i in range(num_classes)
        },
        "confusion_matrix": cm.long().tolist(),
        "recall_per_class": [float(r) for r in recall],
    }
    if probs is not None:
        out.update(auroc(labels, probs, num_classes))
    return out


def format_metrics(title: str, m: dict[str, Any], class_names: Sequence[str]) -> str:
    """A short text report of :func:`classification_metrics`."""
    lines = [
        f"{title}: accuracy {100 * m['accuracy']:.2f}%  balanced accuracy "
        f"{100 * m.get('balanced_accuracy', float('nan')):.2f}%  macro F1 {100 * m['f1_macro']:.2f}%  "
        f"(precision {100 * m['precision_macro']:.2f}%, recall {100 * m['recall_macro']:.2f}%)"
        + (f"  AUROC {m['auroc']:.4f}" if m.get("auroc") is not None else "")
        + f"  (n={m['num_samples']})"
    ]
    if len(class_names) <= 12:
        for name in class_names:
            c = m["per_class"][name]
            lines.append(
                f"    {name:>12}: precision {100 * c['precision']:6.2f}%  recall {100 * c['recall']:6.2f}%  "
                f"F1 {100 * c['f1']:6.2f}%  support {c['support']}"
            )
    return "\n".join(lines)
