"""The content-keyed memory of recent raw CPU edge indices (``ops._api._RECENT``)."""

from __future__ import annotations

import pytest
import torch

import graphvision.nn as gnn
from graphvision.functional import image_to_graph
from graphvision.ops import _api as opsf


@pytest.fixture(autouse=True)
def _fresh_memory():
    opsf.clear_recent_graphs()
    yield
    opsf.clear_recent_graphs()


def test_equal_content_reuses_the_structure_and_its_derived_data() -> None:
    ei = image_to_graph(torch.randn(2, 3, 4, 4)).edge_index
    g1 = opsf.as_structure(ei.clone(), 32, 32)
    g1.with_self_loops()
    g2 = opsf.as_structure(ei.clone(), 32, 32)  # a fresh tensor, same content
    assert g2 is g1 and g2.is_cached(("self_loops", True))
    assert g1.edge_index.data_ptr() != ei.data_ptr()  # a private copy


def test_other_content_size_or_node_count_is_a_new_structure() -> None:
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    g = opsf.as_structure(ei, 3, 3)
    assert opsf.as_structure(torch.tensor([[0, 1, 2], [1, 2, 1]]), 3, 3) is not g
    assert opsf.as_structure(ei.clone(), 4, 4) is not g
    assert opsf.as_structure(ei.clone().int(), 3, 3) is not g


def test_in_place_edit_of_the_callers_tensor_is_never_served_stale() -> None:
    torch.manual_seed(0)
    conv = gnn.GATConv(4, 2, heads=2)
    x = torch.randn(4, 4)
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    conv(x, ei)
    ei[0, 0] = 2  # the caller edits its tensor; the next call must see the new graph
    expected = conv(x, ei.clone())
    opsf.clear_recent_graphs()
    torch.testing.assert_close(conv(x, ei.clone()), expected)
    with pytest.raises(IndexError, match="outside of"):
        conv(x, torch.tensor([[0, 1, 2, 9], [1, 2, 3, 0]]))  # same shape, bad content: validated


def test_memory_is_bounded() -> None:
    for n in range(3, 3 + 2 * opsf.RECENT_GRAPHS):
        opsf.as_structure(torch.tensor([[0], [n - 1]]), n, n)
    assert len(opsf._RECENT) == opsf.RECENT_GRAPHS
