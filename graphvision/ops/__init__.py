"""Fused scatter kernels behind one dispatch point (placeholder; see ops work)."""

__all__: list[str] = []
