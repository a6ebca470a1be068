"""Image-to-graph converters and the way back (heatmaps).

The implementations live in private files; this file gathers their public names:

- :mod:`graphvision.functional._graph_grid`: :func:`grid_graph`, :func:`image_to_graph`,
  :func:`patch_graph`, :func:`edge_similarity`, :func:`nodes_to_image`;
- :mod:`graphvision.functional._graph_knn`: :func:`knn_graph`, :func:`radius_graph`;
- :mod:`graphvision.functional._graph_superpixel`: :func:`slic_superpixels`,
  :func:`superpixel_graph`.
"""

from __future__ import annotations

from graphvision.functional import _graph_grid, _graph_knn, _graph_superpixel
from graphvision.functional._graph_grid import *  # noqa: F401,F403
from graphvision.functional._graph_knn import *  # noqa: F401,F403
from graphvision.functional._graph_superpixel import *  # noqa: F401,F403

__all__ = [*_graph_grid.__all__, *_graph_knn.__all__, *_graph_superpixel.__all__]
