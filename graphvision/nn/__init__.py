"""Modules (:class:`torch.nn.Module`) over :mod:`graphvision.functional`."""

from graphvision.nn import _channel_attention, _conv, _converters, _mutual_information, _pool
from graphvision.nn import _conv_pyg
from graphvision.nn import _vig
from graphvision.nn._channel_attention import *  # noqa: F401,F403
from graphvision.nn._conv import *  # noqa: F401,F403
from graphvision.nn._converters import *  # noqa: F401,F403
from graphvision.nn._mutual_information import *  # noqa: F401,F403
from graphvision.nn._pool import *  # noqa: F401,F403
from graphvision.nn._conv_pyg import *  # noqa: F401,F403
from graphvision.nn._vig import *  # noqa: F401,F403
from graphvision.nn import _message_passing
from graphvision.nn._message_passing import *  # noqa: F401,F403

__all__ = [
    *_converters.__all__,
    *_channel_attention.__all__,
    *_mutual_information.__all__,
    *_conv.__all__,
    *_pool.__all__,
    *_conv_pyg.__all__,
    *_vig.__all__,
    *_message_passing.__all__,
]
