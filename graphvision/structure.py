"""Graph structure with cached target-sorted CSR and padded neighbour table (placeholder; see ops work)."""

from __future__ import annotations

__all__: list[str] = []
