"""Search engines behind one interface: ``get_engine(name, algorithm).run(runner, study, Budget(...))``.

An engine decides (keras-tuner's oracles, Optuna's samplers and pruners) and hands each
configuration to the shared ``search.trial.TrialRunner``, which trains it. A new engine is one
``Engine`` subclass decorated ``@register_engine("name")``, in this package or any module
imported before the run (its ``algorithms`` are the ``--algorithm`` choices, the first the
default). The built-in engines are named in ``ENGINES`` and imported lazily
(keras-tuner and Optuna are only loaded for the engine in use). Only ``search.run`` (and
tests) import this package; engines import ``search.study`` and ``search.hyperparameters``,
never the runner's modules back.
"""

from search.engines.base import (
    ENGINES,
    Budget,
    Engine,
    engine_class,
    get_engine,
    register_engine,
)

__all__ = ["ENGINES", "Budget", "Engine", "engine_class", "get_engine", "register_engine"]
