"""Successive halving over fidelity rungs, for the Optuna engine (``--rungs``).

A trial reports each rung's score (``rung_score`` in the logs of the rung's last epoch, put
there by ``search.training.RungEnd``) at step ``ladder.step(rung)``, and Optuna's
``SuccessiveHalvingPruner`` (``min_resource=1``) judges it there against every trial that
reached the same rung: asynchronous successive halving (ASHA), one rung per power of the
reduction factor. The top rung is not reported: a trial that reached it is finished, not
judged.
"""

from __future__ import annotations

from search.fidelity import Ladder


def rung_pruner(ladder: Ladder):
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=1, reduction_factor=ladder.reduction_factor, min_early_stopping_rate=0
    )


class RungPruning:
    """An engine callback (see ``search.training.EngineCallbacks``): report each rung below
    the top and stop the trial when the pruner says so."""

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
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"stopped after rung {rung} ({self.ladder.rungs[rung].describe()}): validation "
                f"{score:.4f} is not in the best 1/{self.ladder.reduction_factor} of the trials "
                "that reached it"
            )
