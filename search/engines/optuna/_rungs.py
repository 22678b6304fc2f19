"""Successive halving over fidelity rungs, for the Optuna engine (``--rungs``).

A trial reports each rung's score (``rung_score`` in the logs of the rung's last epoch, put
there by ``search.training.RungEnd``) at step ``ladder.step(rung)``, and Optuna's
``SuccessiveHalvingPruner`` (``min_resource=1``) judges it there against every trial that
reached the same rung: asynchronous successive halving (ASHA), one rung per power of the
reduction factor (``--pruner halving``, ``search.engines.optuna._samplers``). The top rung
is not reported: a trial that reached it is finished, not judged.

A published recipe or a starting point (queued marked ``reference`` / ``starting``) is
reported like any trial, so the others compete with it, but always climbs to the top: it is
the yardstick a search's own finds are measured against.
"""

from __future__ import annotations

from search.engines.optuna._protocol import MARKS
from search.fidelity import Ladder


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
            raise optuna.TrialPruned(
                f"stopped after rung {rung} ({self.ladder.rungs[rung].describe()}): validation "
                f"{score:.4f} is not in the best 1/{self.ladder.reduction_factor} of the trials "
                "that reached it"
            )
