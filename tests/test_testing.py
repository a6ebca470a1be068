"""graphvision.testing.assert_close: passes on close tensors, fails loudly on others."""

from __future__ import annotations

import pytest
import torch

from graphvision.testing import assert_close, tolerance


def test_floats_within_tolerance_pass_and_outside_fail() -> None:
    a = torch.tensor([1.0, 2.0, 3.0])
    assert_close(a + 1e-6, a.double())
    with pytest.raises(AssertionError, match=r"1 of 3 elements differ"):
        assert_close(a + torch.tensor([0.0, 0.0, 1e-2]), a)


def test_nan_positions_must_match() -> None:
    with pytest.raises(AssertionError, match="NaN positions differ"):
        assert_close(torch.tensor([float("nan"), 1.0]), torch.tensor([1.0, 1.0]))
    assert_close(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]))


def test_integer_and_bool_compare_exactly() -> None:
    assert_close(torch.tensor([True, False]), torch.tensor([True, False]))
    with pytest.raises(AssertionError, match="1 of 2 elements differ"):
        assert_close(torch.tensor([True, False]), torch.tensor([True, True]))
    with pytest.raises(AssertionError, match="shape mismatch"):
        assert_close(torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long))


def test_tolerance_table_orders_by_precision() -> None:
    assert tolerance(torch.float64)[0] < tolerance(torch.float32)[0] < tolerance(torch.bfloat16)[0]
