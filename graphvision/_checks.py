"""Input validation shared by every public function.

Every check raises ``ValueError`` / ``TypeError`` / ``IndexError`` with a message that names the
argument, what was expected and what was got. Checks that need a host synchronisation
(index ranges) are skipped when :func:`graphvision.config.checks_enabled` is off or while
``torch.compile`` traces.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from graphvision import config

__all__ = [
    "is_compiling",
    "check_tensor",
    "check_shape",
    "check_floating",
    "check_index",
    "check_edge_index",
    "check_same_device",
    "check_positive_int",
    "check_choice",
    "sync_checks_enabled",
    "host_read",
    "check_edge_index_range",
]

#: Number of host reads made through :func:`host_read` (tests count the syncs of one call).
HOST_READS = 0


def is_compiling() -> bool:
    """True while ``torch.compile`` / dynamo traces the caller."""
    try:
        return bool(torch.compiler.is_compiling())
    except AttributeError:  # pragma: no cover - very old torch
        return False


def sync_checks_enabled() -> bool:
    """True when checks that synchronise with the device may run now."""
    return config.checks_enabled() and not is_compiling()


def check_tensor(x: object, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``x`` is a tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"Expected '{name}' to be a torch.Tensor (got {type(x).__name__})")
    return x


def check_shape(x: Tensor, dims: Sequence[str | int], name: str) -> None:
    """Check the rank of ``x`` and any fixed sizes.

    Args:
        x: The tensor.
        dims: One entry per dimension: a name such as ``"B"`` (any size) or an int (that size).
        name: The argument name used in the message.

    Example:
        >>> check_shape(torch.zeros(2, 3, 4, 5), ["B", "C", "H", "W"], "image")
    """
    check_tensor(x, name)

    def pattern() -> str:  # formatted only on failure: no str() of symbolic sizes while tracing
        return "(" + ", ".join(str(d) for d in dims) + ")"

    if x.dim() != len(dims):
        raise ValueError(f"Expected '{name}' of shape {pattern()} (got {tuple(x.shape)})")
    for i, d in enumerate(dims):
        if isinstance(d, int) and x.shape[i] != d:
            raise ValueError(f"Expected '{name}' of shape {pattern()} (got {tuple(x.shape)}): dimension {i} must be {d}")


def check_floating(x: Tensor, name: str) -> None:
    """Raise ``TypeError`` unless ``x`` has a floating-point dtype."""
    if not x.is_floating_point():
        raise TypeError(f"Expected '{name}' to have a floating-point dtype (got {x.dtype})")


def check_same_device(name_a: str, a: Tensor, name_b: str, b: Tensor | None) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` live on the same device (``b`` may be ``None``)."""
    if b is not None and a.device != b.device:
        raise ValueError(
            f"Expected '{name_b}' on the same device as '{name_a}' ({a.device}) (got {b.device})"
        )


def host_read(t: Tensor) -> list:
    """``t.tolist()``: the one way graphvision's checks read device values (one host sync, counted)."""
    global HOST_READS
    HOST_READS += 1
    return t.tolist()


def check_edge_index_range(edge_index: Tensor, num_src: int, num_dst: int, name: str = "edge_index") -> tuple[bool, int]:
    """Check ``edge_index[0] < num_src`` and ``edge_index[1] < num_dst`` with one host read.

    Returns whether the targets are sorted and the number of self-loops, read in the same
    synchronisation (the layers need both later). The caller checked shape and dtype.
    """
    if edge_index.numel() == 0:
        return True, 0
    src, dst = edge_index[0], edge_index[1]
    src_lo, src_hi = torch.aminmax(src)
    dst_lo, dst_hi = torch.aminmax(dst)
    unsorted = (dst[1:] < dst[:-1]).any()
    loops = (src == dst).sum()
    lo0, hi0, lo1, hi1, uns, num_loops = host_read(
        torch.stack([src_lo.long(), src_hi.long(), dst_lo.long(), dst_hi.long(), unsorted.long(), loops.long()])
    )
    for part, lo, hi, size, what in ((0, lo0, hi0, num_src, "number of source nodes"), (1, lo1, hi1, num_dst, "num_nodes")):
        if lo < 0 or hi >= size:
            raise IndexError(
                f"Found indices in '{name}[{part}]' outside of [0, {size}) (got min {lo}, max {hi}; {what}={size})"
            )
    return not uns, num_loops


def check_index(index: Tensor, size: int | None, name: str, *, dim_name: str = "dim_size") -> None:
    """Check an integer index tensor, and that its values lie in ``[0, size)`` when checks are on."""
    check_tensor(index, name)
    if index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"Expected '{name}' of dtype torch.int64 or torch.int32 (got {index.dtype})")
    if size is not None and index.numel() > 0 and sync_checks_enabled():
        lo, hi = host_read(torch.stack(list(torch.aminmax(index))).long())
        if lo < 0 or hi >= size:
            raise IndexError(
                f"Found indices in '{name}' outside of [0, {size}) (got min {lo}, max {hi}; "
                f"{dim_name}={size})"
            )


def check_edge_index(edge_index: Tensor, num_nodes: int | None = None, name: str = "edge_index") -> None:
    """Check a ``(2, E)`` integer edge index and, when checks are on, its range."""
    check_tensor(edge_index, name)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"Expected '{name}' of shape (2, E) (got {tuple(edge_index.shape)})")
    check_index(edge_index, num_nodes, name, dim_name="num_nodes")


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising unless it is an integer ``>= minimum``.

    A symbolic size (``torch.SymInt`` while ``torch.compile`` / ``torch.export`` trace with
    dynamic shapes) is accepted and checked with ``torch._check`` (no guard, no specialisation).
    """
    if isinstance(value, torch.SymInt):
        torch._check(value >= minimum, lambda: f"Expected '{name}' >= {minimum} (got {value})")
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value)
        else:
            raise TypeError(f"Expected '{name}' to be an int (got {type(value).__name__}: {value!r})")
    if value < minimum:
        raise ValueError(f"Expected '{name}' >= {minimum} (got {value})")
    return value


def check_choice(value: object, choices: Sequence[object], name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``, listing them."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; expected one of {tuple(choices)}")
