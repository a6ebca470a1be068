"""Functional API: the math and the validation behind every :mod:`graphvision.nn` module.

Each module in :mod:`graphvision.nn` has a twin here that it calls, as :mod:`torch.nn`
has :mod:`torch.nn.functional`.
"""

from graphvision.functional import _channel_attention, _conv, _converters, _mutual_information, _pool
from graphvision.functional import _conv_pyg
from graphvision.functional import _vig
from graphvision.functional._channel_attention import *  # noqa: F401,F403
from graphvision.functional._conv import *  # noqa: F401,F403
from graphvision.functional._converters import *  # noqa: F401,F403
from graphvision.functional._mutual_information import *  # noqa: F401,F403
from graphvision.functional._pool import *  # noqa: F401,F403
from graphvision.functional._conv_pyg import *  # noqa: F401,F403
from graphvision.functional._vig import *  # noqa: F401,F403

__all__ = [
    *_converters.__all__,
    *_channel_attention.__all__,
    *_mutual_information.__all__,
    *_conv.__all__,
    *_pool.__all__,
    *_conv_pyg.__all__,
    *_vig.__all__,
]
