"""Search engines behind one interface: ``get_engine(name, algorithm).run(runner, study, ...)``.

Engines are imported lazily (keras-tuner and Optuna are only loaded for the engine in use).
"""

from search.engines.base import ENGINES, Engine, SearchError, Study, get_engine

__all__ = ["ENGINES", "Engine", "SearchError", "Study", "get_engine"]
