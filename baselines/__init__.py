"""The two published reference models, reproduced exactly, and their runner.

    python -m baselines.run cnn          # scratch CNN, claims 85%
    python -m baselines.run mobilenet    # MobileNetV2 transfer learning, claims 94%
"""

from baselines.cnn import CNN_RECIPE, build_cnn
from baselines.mobilenet import MOBILENET_RECIPE, build_mobilenet

__all__ = ["CNN_RECIPE", "MOBILENET_RECIPE", "build_cnn", "build_mobilenet"]
