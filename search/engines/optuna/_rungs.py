"""Successive halving over fidelity rungs, for the Optuna engine (``--rungs``).

A trial reports each rung's score (``rung_score`` in the logs of the rung's last epoch, put
there by ``search.training.RungEnd``) at step ``ladder.step(rung)``, and the pruner judges
it there against every trial that reached the same rung (:func:`halving_stops`, ranking a
rung as Optuna's ``SuccessiveHalvingPruner`` with ``min_resource=1`` does): asynchronous
successive halving (ASHA), one rung per power of the reduction factor (``--pruner
halving``, ``search.engines.optuna._samplers``). The top rung
is not reported: a trial that reached it is finished, not judged.

A published recipe or a starting point (queued marked ``reference`` / ``starting``) is
reported like any trial, so the others compete with it, but always climbs to the top: it is
the yardstick a search's own finds are measured against.

**Late promotion** (ASHA's own rule, Li et al. 2020): a trial stopped at a rung keeps its
weights there (``KEPT_RUNG``), and when later arrivals push it into the best third of that
rung, the engine queues a trial of the same configuration that continues it from the next
rung (``CONTINUES``, :func:`late_promotion`). Successive halving judges a trial on arrival,
against the few that arrived before it; without this, an early arrival stopped by a rule
made for small numbers stays stopped however the rung fills in.

The halving rules are pure functions of the scores reported at a rung (:func:`scores_at`):
a late promotion reports only the rungs above the one it continues, so no configuration
counts twice at a rung.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from search.engines.optuna._protocol import CONTINUES, KEPT_RUNG, MARKS, ROW, WORKER
from search.fidelity import Ladder

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def scores_at(trials: Iterable[FrozenTrial], step: int) -> list[float]:
    """Every score reported at ``step`` (NaN left out), one per trial that reached it."""
    values = (t.intermediate_values.get(step) for t in trials)
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def in_best_share(score: float, scores: Sequence[float], reduction_factor: int) -> bool:
    """Whether ``score`` is in the best ``1 / reduction_factor`` of ``scores`` (always
    counting the best one), as Optuna's ``SuccessiveHalvingPruner`` ranks a rung."""
    ranked = sorted(scores, reverse=True)
    return bool(ranked) and score >= ranked[max(len(ranked) // reduction_factor - 1, 0)]


def halving_stops(score: float, here: Sequence[float], reduction_factor: int) -> bool:
    """Whether successive halving stops a trial that scored ``score`` at a rung where
    ``here`` were reported (its own included).

    A trial goes on when it is in the best ``1 / reduction_factor`` of its rung, and the first
    ``reduction_factor - 1`` arrivals at every rung stop whatever they scored (ASHA's own
    condition); late promotion (:func:`late_promotion`) continues them once they rank. A
    rung's first arrival is compared with nothing: letting the first arrival at rung 1 go on
    when it was above every rung-0 score (a higher rung scores higher anyway) spent 1,915 s,
    38% of an 84-minute run, on the network that turned out the worst of its eight at rung 1
    (run P, 0.727 against 0.748-0.766)."""
    if math.isnan(score) or not in_best_share(score, here, reduction_factor):
        return True
    return len(here) < reduction_factor


def _own_rung_seconds(trials: Iterable[FrozenTrial]) -> Iterable[tuple[int, float]]:
    """``(rung, seconds)`` for each rung the search's own trials ran (yardsticks left out):
    each rung record's ``wall_seconds``, else its ``seconds`` (rows written before)."""
    for trial in trials:
        if any(trial.user_attrs.get(mark) for mark in MARKS):
            continue
        for entry in (trial.user_attrs.get(ROW) or {}).get("rungs") or []:
            seconds = entry.get("wall_seconds", entry.get("seconds"))
            yield int(entry.get("rung", -1)), float(seconds or 0.0)


def rung_seconds(trials: Iterable[FrozenTrial], rungs: int) -> list[float]:
    """Seconds the search's own finished trials spent in each of ``rungs`` rungs: each rung
    record's ``wall_seconds`` (building the rung's model, reading or caching its inputs, and
    training it), else its ``seconds`` (training alone, in rows written before). A late
    promotion's row holds only the rungs it climbed itself.

    A yardstick (a published recipe or a starting point, marked ``reference`` / ``starting``)
    is left out: it always climbs to the top, so counting it would charge a search for a
    trial it did not choose. A transfer recipe's top rung (662 s) once outweighed 91
    first looks and 44 second looks (416 s together), and held every trial of the search
    itself below the top rung for the rest of a 50-minute run."""
    spent = [0.0] * rungs
    for rung, seconds in _own_rung_seconds(trials):
        if 0 <= rung < rungs:
            spent[rung] += seconds
    return spent


# Under this many times the dearest top rung left on the clock, the top rung's equal-time
# share no longer holds a trial back (:func:`is_last_call`).
LAST_CALL = 2.0


def is_last_call(trials: Iterable[FrozenTrial], ladder: Ladder, seconds_left: float | None) -> bool:
    """Whether the time left (``seconds_left``; None: no time limit) is under ``LAST_CALL``
    times the dearest top rung the search's own trials have run: the last chance to start
    another one. Equal time per rung exists so that the top rung does not eat the run early;
    at its end, time the top cannot use is lost. Run Q held its four best rung-1 networks
    back until rung 1 had caught up with the top's 1,147 s, 3,655 s into 5,000, when a top
    rung priced at 1,394-1,538 s no longer fit: one network reached the top in 84 minutes."""
    if seconds_left is None:
        return False
    top = len(ladder.rungs) - 1
    paid = [seconds for rung, seconds in _own_rung_seconds(trials) if rung == top]
    return bool(paid) and seconds_left < LAST_CALL * max(paid)


def has_time_share(spent: Sequence[float], rung: int) -> bool:
    """Whether rung ``rung`` (above 0) may take another trial under a time limit: the
    time it has had is not above the time the rung below had. Successive halving spends
    equal time on each rung when each rung costs ``reduction_factor`` times the one below;
    a ladder whose top rung costs about five times its middle one (24 epochs on all the
    images against 8 on half) let the top take 59% of a run's training time, and the run
    looked at 35 configurations in 85 minutes. The first trial at a rung always may."""
    return spent[rung] <= spent[rung - 1]


def late_promotion(
    trials: Sequence[FrozenTrial],
    ladder: Ladder,
    worker: str,
    *,
    balanced: bool = False,
    last_call: bool = False,
) -> tuple[FrozenTrial, int] | None:
    """``(trial, rung)``: the stopped trial of ``worker`` (who holds its kept weights) to
    continue from the rung after ``rung``, or None. Of the trials stopped after a rung below
    the top that kept their weights there and that no trial continues yet, one whose score
    is now in the best ``1 / reduction_factor`` of that rung (which holds at least
    ``reduction_factor`` scores): the best, at the highest rung first. ``balanced`` (under a
    time limit): only into a rung that has not had more than its share of the time
    (:func:`has_time_share`), except into the top rung at the ``last_call``
    (:func:`is_last_call`)."""
    from optuna.trial import TrialState

    factor = ladder.reduction_factor
    taken = {t.user_attrs.get(CONTINUES) for t in trials}
    spent = rung_seconds(trials, len(ladder.rungs)) if balanced else None
    top = len(ladder.rungs) - 1
    for rung in reversed(range(top)):
        held = spent is not None and not has_time_share(spent, rung + 1)
        if held and not (last_call and rung + 1 == top):
            continue
        step = ladder.step(rung)
        here = scores_at(trials, step)
        if len(here) < factor:
            continue
        waiting = [
            t
            for t in trials
            if t.state == TrialState.PRUNED
            and t.user_attrs.get(KEPT_RUNG) == rung
            and t.user_attrs.get(WORKER) == worker
            and t.number not in taken
            and scores_at([t], step)
            and in_best_share(t.intermediate_values[step], here, factor)
        ]
        if waiting:
            return max(waiting, key=lambda t: (t.intermediate_values[step], -t.number)), rung
    return None


class RungPruning:
    """An engine callback (see ``search.training.EngineCallbacks``): report each rung below
    the top and stop the trial when the pruner says so (never a yardstick)."""

    def __init__(self, trial, ladder: Ladder):
        self.trial, self.ladder = trial, ladder

    def set_model(self, model) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        import optuna

        rung = (logs or {}).get("rung")
        if rung is None or int(rung) >= len(self.ladder.rungs) - 1:
            return
        rung, score = int(rung), float(logs["rung_score"])
        self.trial.report(score, step=self.ladder.step(rung))
        judged = self.trial.should_prune()  # records the score for the other trials too
        if judged and not any(self.trial.user_attrs.get(mark) for mark in MARKS):
            why = getattr(self.trial.study.pruner, "reasons", {}).get(self.trial.number)
            raise optuna.TrialPruned(
                f"stopped after rung {rung} ({self.ladder.rungs[rung].describe()}): validation "
                f"{score:.4f} "
                + (
                    why
                    or f"is not in the best 1/{self.ladder.reduction_factor} of the trials "
                    "that reached it"
                )
            )
