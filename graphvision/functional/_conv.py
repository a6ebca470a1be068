"""Placeholder: filled in by the owning work item."""

__all__: list[str] = []
