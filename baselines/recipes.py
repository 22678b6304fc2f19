"""Which space each published model is the reference point of, and its published epoch budget."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Baseline:
    name: str
    space: str  # the registered space whose reference configuration is the published model
    # The published budget: the epochs of the first phase (for MobileNetV2 a ceiling, which
    # early stopping ends sooner) and of fine-tuning (0: none).
    epochs: int
    fine_tune_epochs: int = 0

    def reference_config(self) -> dict[str, Any]:
        from spaces import get_space

        return dict(get_space(self.space).reference_configs()[0])


BASELINES: dict[str, Baseline] = {
    # 3 x [Conv 64 3x3, MaxPool, Dropout 0.4], Dense 128, Dropout 0.4; 256 px, Adam 1e-3,
    # ReduceLROnPlateau(0.25, 5), 35 epochs.
    "cnn": Baseline("cnn", space="cnn", epochs=35),
    # Frozen MobileNetV2 + GAP, Dense 128, Dropout 0.2; Adam 0.01, ReduceLROnPlateau(0.5, 2),
    # early stopping on val_accuracy (patience 5) within 20 epochs; then the top 54 layers
    # unfrozen at a tenth of the rate for 10 epochs.
    "mobilenet": Baseline("mobilenet", space="mobilenet", epochs=20, fine_tune_epochs=10),
}


def get_baseline(name: str) -> Baseline:
    try:
        return BASELINES[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}"
        ) from None
