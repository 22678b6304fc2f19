"""The two published reference models, reproduced on the leak-free split.

    python -m baselines.run cnn          # scratch CNN, claims 85%
    python -m baselines.run mobilenet    # MobileNetV2 transfer learning, claims 94%

A baseline is not written here: it is its search space's reference configuration
(``spaces/cnn.py``, ``spaces/mobilenet.py``), trained by the same ``search.trial.TrialRunner``
and ``fit`` as every trial, with the published epoch budget (``BASELINES``). So a recipe has one
definition, and the baseline is by construction a point of its space. This package sits on
top: it imports ``search`` and ``spaces``; nothing imports it.
"""

from baselines.recipes import BASELINES, Baseline, get_baseline

__all__ = ["BASELINES", "Baseline", "get_baseline"]
