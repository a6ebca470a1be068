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


def classification_metrics(
    labels: Sequence[int], preds: Sequence[int], num_classes: int, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Accuracy, macro precision / recall / F1 (all classes, 0 where undefined), per class, confusion matrix."""
    cm = confusion_matrix(labels, preds, num_classes).double()
    tp = cm.diag()
    pred_pos, true_pos = cm.sum(0), cm.sum(1)
    precision = torch.where(pred_pos > 0, tp / pred_pos.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(true_pos > 0, tp / true_pos.clamp_min(1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(tp))
    total = float(cm.sum())
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    return {
        "accuracy": float(tp.sum()) / total if total else 0.0,
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
    }


def format_metrics(title: str, m: dict[str, Any], class_names: Sequence[str]) -> str:
    """A short text report of :func:`classification_metrics`."""
    lines = [
        f"{title}: accuracy {100 * m['accuracy']:.2f}%  macro precision {100 * m['precision_macro']:.2f}%  "
        f"recall {100 * m['recall_macro']:.2f}%  F1 {100 * m['f1_macro']:.2f}%  (n={m['num_samples']})"
    ]
    if len(class_names) <= 12:
        for name in class_names:
            c = m["per_class"][name]
            lines.append(
                f"    {name:>12}: precision {100 * c['precision']:6.2f}%  recall {100 * c['recall']:6.2f}%  "
                f"F1 {100 * c['f1']:6.2f}%  support {c['support']}"
            )
    return "\n".join(lines)
