"""Search engines behind one interface: ``get_engine(name, algorithm).run(runner, study, ...)``.

An engine decides (keras-tuner's oracles, Optuna's samplers and pruners) and hands each
configuration to the shared ``search.trial.TrialRunner``, which trains it. A new engine is one
module here with an ``Engine`` subclass, named in ``ENGINES``. Engines are imported lazily
(keras-tuner and Optuna are only loaded for the engine in use). Only ``search.run`` (and
tests) import this package; engines import ``search.study`` and ``search.hyperparameters``,
never the runner's modules back.
"""

from search.engines.base import ENGINES, Engine, engine_class, get_engine

__all__ = ["ENGINES", "Engine", "engine_class", "get_engine"]
