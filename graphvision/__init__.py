"""graphvision: PyTorch layers for learning on graphs built from images.

Subpackages:

- :mod:`graphvision.functional`: image-to-graph converters, mutual-information adjacency,
  channel attention, graph convolutions and pooling as functions;
- :mod:`graphvision.nn`: the same as :class:`torch.nn.Module` layers;
- :mod:`graphvision.ops`: fused scatter kernels (Triton on CUDA, pure torch on any device,
  optional torch-scatter / torch-sparse) behind one dispatch point;
- :mod:`graphvision.config`: backend selection and input checks;
- :mod:`graphvision.utils`: PyG's graph utilities (dense batches, self-loops, coalesce, ...).
"""

from graphvision import config, functional, nn, ops
from graphvision import utils
from graphvision.structure import *  # noqa: F401,F403

__version__ = "0.1.0"

__all__ = ["config", "functional", "nn", "ops", "GraphStructure", "__version__", "utils"]
