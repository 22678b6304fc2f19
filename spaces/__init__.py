"""Search spaces: ``register_space``, ``get_space``, ``list_spaces``.

Importing this package registers the built-in spaces (``cnn``, ``mobilenet``,
``mobilenet-head``). A new space is
one new module with a ``@register_space("name")`` class, imported below.
"""

from spaces.registry import BuildContext, Space, get_space, list_spaces, register_space

# Built-in spaces register themselves on import.
from spaces import cnn as _cnn  # noqa: E402,F401
from spaces import mobilenet as _mobilenet  # noqa: E402,F401
from spaces import mobilenet_head as _mobilenet_head  # noqa: E402,F401

__all__ = ["BuildContext", "Space", "get_space", "list_spaces", "register_space"]
