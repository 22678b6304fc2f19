"""Search spaces: ``register_space``, ``get_space``, ``list_spaces``.

What is searched, apart from how (``search.engines``) and how a trial runs (``search.trial``).
Importing this package registers the built-in spaces (``cnn``, ``mobilenet``,
``mobilenet-cached``, ``mobilenet-head``). A new space is one new module with a
``@register_space("name")`` class, imported below (or any module imported before the run); a
variant of a space is one ``register_space("name", BaseSpace, **preset)`` call, and
``get_space(name, **kwargs)`` passes keyword arguments on (timm's ``create_model``). A space
declares its hyperparameters where it builds its model. Pretrained
backbones' facts (constructor, input scaling, layers, weights file) are one table,
``spaces/backbones.py``; ``spaces/augment.py`` is the augmentation sub-space the image spaces
share. The published recipes are the spaces' reference configurations (``baselines`` trains
them). Spaces import only ``search.training`` (the one compile) and ``search.data`` (the one
input pipeline) from the package around them, lazily; nothing here imports the runner or an
engine.
"""

# Built-in spaces register themselves on import.
from spaces import cnn as _cnn  # noqa: E402,F401
from spaces import mobilenet as _mobilenet  # noqa: E402,F401
from spaces import mobilenet_cached as _mobilenet_cached  # noqa: E402,F401
from spaces import mobilenet_head as _mobilenet_head  # noqa: E402,F401
from spaces.registry import BuildContext, Space, get_space, list_spaces, register_space

__all__ = ["BuildContext", "Space", "get_space", "list_spaces", "register_space"]
