"""Test helpers for graphvision and for code built on it.

- :func:`assert_close`: comparison with a per-dtype tolerance table and a verbose message;
- :data:`TOLERANCES`: that table;
- :mod:`graphvision.testing.strategies`: hypothesis strategies for graphs and images
  (imports hypothesis, so it is not imported here).
"""

from graphvision.testing._assert import TOLERANCES, assert_close, tolerance

__all__ = ["TOLERANCES", "assert_close", "tolerance"]
