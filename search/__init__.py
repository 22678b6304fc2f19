"""The engine room of the architecture search: everything except what is searched (``spaces``)
and the published models (``baselines``, which sit on top of both).

Layers, bottom up (no import cycle anywhere: ``tests/architecture_test.py`` checks it):

- ``search.results``  the common results table, reading a results tree, the selection rule;
- ``search.data``     finding, deduplicating, splitting and caching the data; data sources;
- ``search.training`` the one compile and the per-fit callbacks (spaces use it);
- ``search.model_io`` and ``search.evaluate`` (the one scoring function, also a command):
  saving models with their sidecar, and scoring them;
- ``search.hyperparameters``, ``search.study``, ``search.trial`` (+ ``search.isolation``):
  one trial's configuration, its study folder, and the runner that trains it;
- ``search.engines``  Keras Tuner and Optuna, which decide what the runner trains;
- ``search.run``, ``search.evaluate``, ``search.export``, ``search.predict``,
  ``search.dashboard``: the commands.

Private helpers (``_metrics``, ``_process``) are used only inside this package.
"""
