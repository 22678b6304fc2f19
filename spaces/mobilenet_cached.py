"""``mobilenet-cached``: the mobilenet space cut to what trains on cached tensors, for a CPU.

Every trial of this space trains on outputs of the frozen backbone computed once and cached:
the head on pooled features, fine-tuning on the activations at the cut. So it has no
augmentation layers (they would send every epoch through the whole backbone); mirror images
(``flip_views``, cached beside the originals) are its augmentation, and test-time flip
averaging (``tta_flip``) is offered as in ``mobilenet``. Input sizes stop at 288 px and
fine-tuning at the published cut (the backbone table's ``published_fine_tune_layers``: the
top 54 layers, blocks 12-16 and the last convolution), where a fine-tuning epoch on cached
activations costs tens of seconds on two cores and each (size, cut) cache a few gigabytes at
most; deeper cuts and 320 px are in ``mobilenet``. The published recipe is a point of this
space and its first trial.

It is the ``mobilenet`` space registered with preset keyword arguments, not a subclass.
"""

from __future__ import annotations

from spaces.backbones import BACKBONES
from spaces.mobilenet import MobileNetSpace
from spaces.registry import register_space

_CUT = BACKBONES["mobilenet_v2"].published_fine_tune_layers

register_space(
    "mobilenet-cached",
    MobileNetSpace,
    description=(
        "mobilenet for a CPU budget: every trial on cached backbone outputs "
        f"(fine-tuning up to the published {_CUT} layers, 160-288 px, mirror-image "
        "views, test-time flip averaging; no augmentation layers)"
    ),
    augment=False,
    image_sizes=(160, 288),
    max_fine_tune_layers=_CUT,
)
