"""Engine-neutral hyperparameters: keras-tuner's ``HyperParameters`` calls, answered define-by-run.

Spaces are written once against keras-tuner's API (``hp.Int``, ``hp.Float``, ``hp.Choice``,
``hp.Boolean``, ``hp.conditional_scope``). ``DefineByRunHyperParameters`` answers those calls
by asking a *source* for each value as it is declared:

- an Optuna trial (the Optuna engine): ``hp.Int`` -> ``trial.suggest_int``, ``hp.Float`` ->
  ``suggest_float`` (``sampling="log"`` -> ``log=True``), ``hp.Choice``/``hp.Boolean`` ->
  ``suggest_categorical``;
- fixed values (``fixed_hyperparameters(config)``): a recorded trial rebuilt in a child
  process, a retrain, a baseline (its space's reference configuration), for either engine.

``conditional_scope`` behaves as in keras-tuner: declarations inside an inactive scope
return None (and are not asked of the source, so they never reach Optuna's search space).
Nothing here imports an engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any


class DefineByRunHyperParameters:
    """Duck-typed stand-in for ``keras_tuner.HyperParameters`` over a source of values (an
    ``optuna.trial.Trial``, or :class:`FixedValues`)."""

    def __init__(self, trial: Any):
        self.trial = trial  # anything with suggest_int / suggest_float / suggest_categorical
        self.values: dict[str, Any] = {}  # active values, in declaration order
        self._scopes: list[tuple[str, tuple[Any, ...]]] = []

    # -- declarations ---------------------------------------------------------------------
    def Int(
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str = "linear",
        default: int | None = None,
        **_: Any,
    ) -> int | None:
        if not self._active():
            return None
        log = _is_log(name, sampling)
        if log and step not in (None, 1):
            # keras-tuner reads `step` as a multiplier under log sampling; Optuna has no
            # such distribution, so refuse rather than sample a different space.
            raise ValueError(f"hp {name!r}: log sampling with step={step} has no Optuna equivalent")
        value = self.trial.suggest_int(name, min_value, max_value, step=step or 1, log=log)
        return self._record(name, int(value))

    def Float(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
        **_: Any,
    ) -> float | None:
        if not self._active():
            return None
        log = _is_log(name, sampling)
        if log and step is not None:
            raise ValueError(f"hp {name!r}: log sampling with step={step} has no Optuna equivalent")
        value = self.trial.suggest_float(name, min_value, max_value, step=step, log=log)
        return self._record(name, float(value))

    def Choice(
        self,
        name: str,
        values: Sequence[Any],
        ordered: bool | None = None,
        default: Any = None,
        **_: Any,
    ) -> Any:
        if not self._active():
            return None
        return self._record(name, self.trial.suggest_categorical(name, list(values)))

    def Boolean(self, name: str, default: bool = False, **_: Any) -> bool | None:
        if not self._active():
            return None
        return self._record(name, bool(self.trial.suggest_categorical(name, [False, True])))

    def Fixed(self, name: str, value: Any, **_: Any) -> Any:
        if not self._active():
            return None
        return self._record(name, value)

    # -- conditions -------------------------------------------------------------------------
    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        if parent_name not in self.values and self._active():
            raise ValueError(
                f"conditional_scope on {parent_name!r}, which has not been declared yet "
                f"(declared so far: {', '.join(self.values) or 'none'})"
            )
        if not isinstance(parent_values, (list, tuple, set)):
            parent_values = [parent_values]
        self._scopes.append((parent_name, tuple(parent_values)))
        try:
            yield
        finally:
            self._scopes.pop()

    def is_active(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> Any:
        if name not in self.values:
            raise KeyError(
                f"hyperparameter {name!r} is not active in this trial "
                f"(active: {', '.join(self.values) or 'none'})"
            )
        return self.values[name]

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    # -- internals --------------------------------------------------------------------------
    def _active(self) -> bool:
        return all(self.values.get(name) in allowed for name, allowed in self._scopes)

    def _record(self, name: str, value: Any) -> Any:
        if name in self.values and self.values[name] != value:
            raise ValueError(f"hyperparameter {name!r} declared twice with different values")
        self.values[name] = value
        return value


def hp_config(hp: Any) -> dict[str, Any]:
    """The active hyperparameter values of a trial (keras-tuner's ``HyperParameters`` or ours),
    without engine bookkeeping entries."""
    out = {}
    for name, value in dict(hp.values).items():
        if name.startswith("tuner/"):  # keras-tuner Hyperband's epochs/bracket/round
            continue
        try:
            active = hp.is_active(name)
        except (KeyError, ValueError):
            active = True
        if active:
            # Exactly the engine's value (keras-tuner's stepped floats may read
            # 0.30000000000000004): the table must agree with the engine's own records.
            out[name] = value.item() if hasattr(value, "item") else value
    return out


class FixedValues:
    """A source that answers every ``suggest_*`` from a recorded configuration."""

    def __init__(self, config: dict[str, Any]):
        self.config = dict(config)

    def _value(self, name: str) -> Any:
        if name not in self.config:
            raise ValueError(
                f"hyperparameter {name!r} has no value in the configuration "
                f"(it has: {', '.join(self.config) or 'nothing'})"
            )
        return self.config[name]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return int(self._value(name))

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return float(self._value(name))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._value(name)


def fixed_hyperparameters(config: dict[str, Any]) -> DefineByRunHyperParameters:
    """``hp`` that answers every declaration from ``config`` (a recorded trial's values)."""
    return DefineByRunHyperParameters(FixedValues(config))


def _is_log(name: str, sampling: str | None) -> bool:
    sampling = (sampling or "linear").lower()
    if sampling not in ("linear", "log"):
        # "reverse_log" exists in keras-tuner but not in Optuna.
        raise ValueError(
            f"hp {name!r}: sampling {sampling!r} is not supported; choices: linear, log"
        )
    return sampling == "log"
