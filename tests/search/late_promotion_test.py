"""Late promotion over rungs (ASHA's own rule): a trial successive halving stopped keeps its
rung weights, and when later arrivals put it in the best third of its rung, a trial of the
same configuration continues it from the next rung instead of it staying stopped."""

from __future__ import annotations

import keras
import numpy as np
import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from search.engines.optuna._protocol import (
    CONTINUES,
    FROM_RUNG,
    INTERRUPTED,
    KEPT_RUNG,
    REFERENCE,
    RETRY_OF,
    ROW,
    WORKER,
    surplus_reason,
    to_requeue,
)
from search.engines.optuna._rungs import (
    halving_stops,
    has_time_share,
    in_best_share,
    is_last_call,
    late_promotion,
    rung_seconds,
)
from search.fidelity import parse_ladder
from search.results import TrialRecord, rung_report

LADDER = parse_ladder("16:0.5:1,24:0.5:2,-:1:3")  # rungs judged at steps 1 and 3
ME, OTHER = "me:/study", "other:/study"


def _stopped(number, scores, *, kept=True, worker=ME, state=TrialState.PRUNED, **attrs):
    """A trial stopped after its last score (one per rung from rung 0)."""
    rung = len(scores) - 1
    user_attrs = {WORKER: worker, **attrs}
    if kept:
        user_attrs[KEPT_RUNG] = rung
    trial = create_trial(
        state=state,
        params={"units": 4 + number % 4},
        distributions={"units": IntDistribution(1, 64)},
        intermediate_values={LADDER.step(k): s for k, s in enumerate(scores)},
        user_attrs=user_attrs,
    )
    trial.number = number
    return trial


def test_the_halving_rules_over_a_rungs_scores():
    assert in_best_share(0.8, [0.8, 0.2, 0.3], 3)
    assert not in_best_share(0.3, [0.8, 0.2, 0.3], 3)
    assert in_best_share(0.5, [0.9, 0.5, 0.1, 0.2, 0.3, 0.4], 3)  # the best two of six
    # At every rung the first two arrivals stop whatever they scored; then the best third
    # goes on.
    assert halving_stops(0.9, [0.9], 3) and halving_stops(0.9, [0.1, 0.9], 3)
    assert not halving_stops(0.9, [0.1, 0.2, 0.9], 3)
    assert halving_stops(0.2, [0.1, 0.2, 0.9], 3)
    assert halving_stops(float("nan"), [0.1, 0.2, 0.9], 3)


def test_a_stopped_trial_is_continued_once_it_ranks_in_the_best_third_of_its_rung():
    # Trials 0 and 1 stopped at rung 0 as the first two arrivals; 2 went on; 3 stopped.
    trials = [_stopped(0, [0.8]), _stopped(1, [0.2]), _stopped(2, [0.9, 0.5]), _stopped(3, [0.1])]
    # Rung 0 holds 0.8, 0.2, 0.9, 0.1: its best third is 0.9 alone; nothing to continue at
    # rung 1 (one score there).
    assert late_promotion(trials, LADDER, ME) is None
    trials += [_stopped(4, [0.3]), _stopped(5, [0.25])]  # six at rung 0: the best two go on
    pick, rung = late_promotion(trials, LADDER, ME)
    assert (pick.number, rung) == (0, 0)
    # Once a trial continues it, it is not offered again; nor is a trial whose weights are
    # another worker's, or one that kept none.
    queued = _stopped(6, [], kept=False, state=TrialState.WAITING, **{CONTINUES: 0})
    continued = [*trials, queued]
    assert late_promotion(continued, LADDER, ME) is None
    assert late_promotion(trials, LADDER, OTHER) is None
    unkept = [_stopped(0, [0.8], kept=False), *trials[1:]]
    assert late_promotion(unkept, LADDER, ME) is None


def test_the_highest_rung_is_promoted_first():
    trials = [
        _stopped(0, [0.9]),  # rung 0: in the best third of six
        _stopped(1, [0.7, 0.6]),  # rung 1: stopped as an early arrival, now the best of three
        _stopped(2, [0.8, 0.5]),
        _stopped(3, [0.75, 0.4]),
        _stopped(4, [0.1]),
        _stopped(5, [0.2]),
    ]
    pick, rung = late_promotion(trials, LADDER, ME)
    assert (pick.number, rung) == (1, 1)


def test_one_continuation_per_stopped_trial_and_a_retry_keeps_what_it_continues():
    def running(number, **attrs):
        return _stopped(number, [], kept=False, state=TrialState.RUNNING, **attrs)

    first, twin = running(7, **{CONTINUES: 0}), running(8, **{CONTINUES: 0})
    assert surplus_reason([first, twin], 7, 100) is None
    assert surplus_reason([first, twin], 8, 100) == "trial 7 already continues trial 0"
    marks = {CONTINUES: 0, FROM_RUNG: 0, INTERRUPTED: True}
    interrupted = _stopped(7, [], kept=False, state=TrialState.FAIL, **marks)
    [(params, attrs)] = to_requeue([interrupted])
    assert attrs == {RETRY_OF: 7, CONTINUES: 0, FROM_RUNG: 0}
    retry = running(9, **attrs)
    assert surplus_reason([interrupted, retry], 9, 100) is None  # a retry is not a twin


def _row(trial_id, rungs, continued_from=None, state="PRUNED"):
    return TrialRecord(
        study="s",
        engine="optuna",
        algorithm="evolution",
        space="cnn",
        trial_id=str(trial_id),
        number=int(trial_id),
        state=state,
        config={},
        continued_from=continued_from,
        rungs=[{"rung": k, "val_accuracy": v} for k, v in rungs],
    )


def test_a_continuation_and_the_trial_it_continues_count_once_per_rung():
    rows = [
        _row(0, [(0, 0.8)]),
        _row(1, [(0, 0.2)]),
        _row(2, [(0, 0.9), (1, 0.85)], state="COMPLETE"),
        _row(3, [(1, 0.88)], continued_from="0", state="COMPLETE"),
    ]
    report = rung_report(rows, top=1)
    assert report["reached"] == [3, 2]
    assert report["correlations"][0]["n"] == 2  # trial 3's line has trial 0's rung-0 score


class _Scripted(keras.callbacks.Callback):
    """Puts a scripted validation score into each epoch's logs, before the rung sees them."""

    def __init__(self, score):
        super().__init__()
        self.score = score

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.score


@pytest.mark.slow
def test_a_search_continues_a_stopped_trial_from_its_kept_weights(tiny_data, tmp_path):
    from search.hyperparameters import fixed_hyperparameters
    from search.results import read_json, read_trials
    from search.run import run_search
    from spaces import BuildContext
    from tests.search.warm_start_test import WarmSpace

    rung0 = iter([0.8, 0.2, 0.3])  # trial 0's is the best, but it arrived first and stopped

    class ScriptedSpace(WarmSpace):
        def fit(self, hp, model, data, ctx, **kwargs):
            score = next(rung0) if kwargs["epochs"] == 1 else 0.9
            kwargs["callbacks"] = [_Scripted(score), *kwargs["callbacks"]]
            super().fit(hp, model, data, ctx, **kwargs)

    WarmSpace.seen = []
    out = run_search(
        ScriptedSpace(),
        tiny_data,
        engine="optuna",
        algorithm="random",
        trials=4,
        epochs=2,
        rungs="16:0.5:1,-:1:2",
        results=tmp_path,
        seed=0,
        progress=False,
        isolate=False,
        references=False,
        starting_points=False,
        study="late",
        measure_latency=False,
    )
    rows = {r.number: r for r in read_trials(out["study_dir"] / "trials.jsonl")}
    assert [rows[n].state for n in range(3)] == ["PRUNED"] * 3
    assert all(rows[n].rungs[-1]["weights_kept"] for n in range(3))
    # Kept with the score of the epoch they come from, which the continuation must beat.
    scored = out["study_dir"] / "checkpoints" / "rungs" / "trial-0.score.json"
    assert read_json(scored) == {"val_accuracy": 0.8}
    late = rows[3]
    assert late.state == "COMPLETE", late.error
    assert late.continued_from == "0" and late.config == rows[0].config
    assert [(g["rung"], g["continued"]) for g in late.rungs] == [(1, True)]
    assert late.epochs_run == 1  # only the top rung's epoch: rung 0 was trial 0's
    initial_epoch, start = WarmSpace.seen[-1]
    assert initial_epoch == 1
    kept = ScriptedSpace().build(fixed_hyperparameters(rows[0].config), BuildContext(5))
    kept.load_weights(out["study_dir"] / "checkpoints" / "rungs" / "trial-0.weights.h5")
    for a, b in zip(start, kept.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert read_json(out["study_dir"] / "best.json")["rungs"]["reached"] == [3, 1]
    ostudy = optuna.load_study(
        study_name="late", storage=f"sqlite:///{out['study_dir'] / 'optuna.db'}"
    )
    attrs = ostudy.trials[3].user_attrs
    assert attrs[CONTINUES] == 0 and attrs[FROM_RUNG] == 0


def _timed(number, scores, seconds, **kwargs):
    trial = _stopped(number, scores, **kwargs)
    trial.user_attrs[ROW] = {"rungs": [{"rung": k, "seconds": s} for k, s in enumerate(seconds)]}
    return trial


def test_under_a_time_limit_a_rung_that_had_more_time_than_the_one_below_waits():
    # Rung 0: 6 trials x 20 s; rung 1: one trial of 200 s. Trial 0 ranks in rung 0's best
    # third but rung 1 has had more time (200 s) than rung 0 (120 s).
    trials = [_timed(0, [0.8], [20]), _timed(1, [0.9, 0.6], [20, 200])]
    trials += [_timed(n, [0.1 * n], [20]) for n in range(2, 6)]
    assert rung_seconds(trials, 3) == [120.0, 200.0, 0.0]
    assert not has_time_share([120.0, 200.0, 0.0], 1) and has_time_share([120.0, 200.0, 0.0], 2)
    assert late_promotion(trials, LADDER, ME, balanced=False)[0].number == 0
    assert late_promotion(trials, LADDER, ME, balanced=True) is None
    trials += [_timed(n, [0.05], [20]) for n in range(6, 11)]  # rung 0 catches up: 220 s
    assert late_promotion(trials, LADDER, ME, balanced=True)[0].number == 0


def _top_rung_had_more_time():
    """Rung 0: 6 x 20 s; rung 1: trials 1-3, 30 s each; the top: trial 1, 300 s. Trial 2
    ranks in rung 1's best third but the top has had more time (300 s) than rung 1 (90 s)."""
    trials = [_timed(0, [0.5], [20]), _timed(1, [0.9, 0.6, 0.7], [20, 30, 300], kept=False)]
    trials += [_timed(2, [0.8, 0.65], [20, 30]), _timed(3, [0.7, 0.5], [20, 30])]
    return trials + [_timed(n, [0.1 * n], [20]) for n in range(4, 6)]


def test_at_the_last_call_the_top_rung_takes_a_held_trial_whatever_time_it_had():
    trials = _top_rung_had_more_time()
    assert rung_seconds(trials, 3) == [120.0, 90.0, 300.0]
    assert late_promotion(trials, LADDER, ME, balanced=True) is None
    # Twice the dearest top rung (600 s) or more left: still held; under it, the last call.
    assert not is_last_call(trials, LADDER, 600.0) and not is_last_call(trials, LADDER, None)
    assert is_last_call(trials, LADDER, 599.0)
    pick, rung = late_promotion(trials, LADDER, ME, balanced=True, last_call=True)
    assert (pick.number, rung) == (2, 1)
    # Only the top rung is let through: into rung 1 (more time than rung 0) nothing goes.
    below = [_timed(0, [0.8], [20]), _timed(1, [0.9, 0.6], [20, 200])]
    below += [_timed(n, [0.1 * n], [20]) for n in range(2, 6)]
    assert is_last_call(below, LADDER, 10.0) is False  # no top rung run yet: no price known
    assert late_promotion(below, LADDER, ME, balanced=True, last_call=True) is None


def test_the_engine_queues_the_last_call_continuation_when_the_clock_says_so():
    from search.engines.optuna._engine import OptunaEngine

    engine = OptunaEngine("random", ladder=LADDER)
    engine.balanced = True  # as under --max-time
    ostudy = optuna.create_study(direction="maximize")
    engine._promote_late(ostudy, _top_rung_had_more_time(), ME, 600.0)
    assert ostudy.get_trials() == []  # twice the top rung's 300 s left: the balance holds
    engine._promote_late(ostudy, _top_rung_had_more_time(), ME, 599.0)
    (queued,) = ostudy.get_trials()
    assert queued.state == TrialState.WAITING
    assert (queued.user_attrs[CONTINUES], queued.user_attrs[FROM_RUNG]) == (2, 1)


YARDSTICK = {"kept": False, REFERENCE: True}  # a published recipe, here stopped by the clock


def test_the_time_a_rung_had_is_its_wall_time_and_leaves_the_yardsticks_out():
    trials = [_timed(0, [0.8], [20]), _timed(1, [0.9, 0.6], [20, 200], **YARDSTICK)]
    trials[0].user_attrs[ROW]["rungs"][0]["wall_seconds"] = 35.0
    # The recipe always climbs: its 200 s at rung 1 do not hold the search's own trials back.
    assert rung_seconds(trials, 3) == [35.0, 0.0, 0.0]
    trials += [_timed(n, [0.1 * n], [20]) for n in range(2, 6)]
    assert late_promotion(trials, LADDER, ME, balanced=True)[0].number == 0


def test_the_balanced_pruner_stops_a_trial_in_the_best_share_and_says_why():
    from search.engines.optuna._rungs import RungPruning
    from search.engines.optuna._samplers import make_pruner

    study = optuna.create_study(
        direction="maximize", pruner=make_pruner(None, 3, rungs=True, balanced=3)
    )
    for score, seconds in [(0.1, [20]), (0.2, [20]), (0.9, [20, 300])]:
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED,
                intermediate_values={1: score, **({3: 0.5} if len(seconds) > 1 else {})},
                user_attrs={
                    ROW: {"rungs": [{"rung": k, "seconds": s} for k, s in enumerate(seconds)]}
                },
            )
        )
    trial = study.ask()
    with pytest.raises(
        optuna.TrialPruned,
        match=r"best 1/3 .* rung 1 has had more of the time \(300 s\) than rung 0 \(60 s\); kept for a later promotion",
    ):
        RungPruning(trial, LADDER).on_epoch_end(0, {"rung": 0.0, "rung_score": 0.95})
