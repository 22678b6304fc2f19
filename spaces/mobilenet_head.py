"""``mobilenet-head``: only the classifier head on a frozen MobileNetV2 (ImageNet).

The published MobileNetV2 recipe reaches most of its accuracy in its frozen phase (on this
split the head phase alone reaches 91.2-91.9% validation accuracy in every run; fine-tuning
then swings, and the whole recipe ends anywhere from 87.5% to 92.8%: README, Baselines).
This space searches that phase alone: input size, head width and dropout, learning rate,
what the head sees (pooled features, or those and earlier blocks' texture statistics),
mirror-image views and test-time flip averaging; no fine-tuning, no augmentation layers, so
the backbone is a fixed function of the image and every trial trains on backbone features
cached once per input size, in seconds on a CPU.
"""

from __future__ import annotations

from typing import Any

from spaces.mobilenet import PUBLISHED_HEAD, MobileNetSpace
from spaces.registry import register_space


@register_space("mobilenet-head")
class MobileNetHeadSpace(MobileNetSpace):
    description = (
        "the head alone on a frozen MobileNetV2 (ImageNet), trained on cached "
        "backbone features: input size, head width and dropout, learning rate"
    )

    def __init__(self) -> None:
        super().__init__(fine_tune=False, augment=False)

    def reference_configs(self) -> list[dict[str, Any]]:
        # The published recipe's frozen phase.
        return [
            {
                **PUBLISHED_HEAD,
                "flip_views": False,
                "tta_flip": False,
                "head_inputs": "pooled",
            }
        ]
