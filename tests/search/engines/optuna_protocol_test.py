"""The workers' protocol (search.engines.optuna._protocol): the slot, retry and counting rules
over trials built with ``optuna.trial.create_trial``; no storage, no training."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from search.engines.optuna import _protocol as P

REPO = Path(__file__).resolve().parents[3]
S = optuna.trial.TrialState
X = {"x": optuna.distributions.IntDistribution(0, 9)}


def trial(number: int, state=S.COMPLETE, *, system_attrs=None, start=None, **user_attrs):
    made = optuna.trial.create_trial(
        state=state,
        value=0.5 if state == S.COMPLETE else None,
        params={"x": number % 10},
        distributions=X,
        user_attrs=user_attrs,
        system_attrs=system_attrs or {},
    )
    made.number = number  # create_trial leaves numbering to the study
    if start is not None:
        made.datetime_start = start
    return made


def heartbeat_retry(number: int, *chain: int, state=S.WAITING, **user_attrs):
    return trial(
        number,
        state,
        system_attrs={"failed_trial": chain[0], "retry_history": list(chain)},
        **user_attrs,
    )


def test_the_protocol_module_imports_neither_tensorflow_nor_keras():
    code = (
        "import sys, search.engines.optuna._protocol; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_predecessor_reads_heartbeat_retries_first_then_resume_retries():
    assert P.predecessor(trial(0)) is None
    assert P.predecessor(trial(5, S.WAITING, retry_of=2)) == 2
    assert P.predecessor(heartbeat_retry(7, 3, 5)) == 5  # the last of its chain
    # A heartbeat retry copies the user_attrs of the trial it retries (a resume's retry_of
    # among them): the heartbeat's own chain names its predecessor.
    assert P.predecessor(heartbeat_retry(8, 6, retry_of=2)) == 6
    assert P.retried_numbers([trial(0), trial(5, retry_of=2), heartbeat_retry(7, 3, 5)]) == {2, 5}


def test_retry_history_is_read_with_optunas_own_callback():
    # The callback's output, as Optuna writes it, is what predecessor() reads.
    study = optuna.create_study()
    study.add_trial(trial(0, S.FAIL))
    failed = study.get_trials(deepcopy=False)[0]
    callback = (
        getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        or optuna.storages.RetryFailedTrialCallback
    )
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        callback(max_retry=3)(study, failed)
    queued = study.get_trials(deepcopy=False)[1]
    assert P.retry_history(queued) == [0] and P.predecessor(queued) == 0


def test_what_counts_toward_the_trial_total():
    trials = [
        trial(0, row={}),  # counts
        trial(1, S.PRUNED, row={}),  # counts
        trial(2, S.FAIL, row={}),  # a failed training: counts
        trial(3, S.FAIL),  # its worker died; retried: does not count
        heartbeat_retry(4, 3, state=S.COMPLETE, row={}),  # ... its retry counts
        trial(5, S.FAIL),  # died, not retried (yet): counts
        trial(6, S.FAIL, interrupted=True),  # Ctrl-C: redone, not counted
        trial(7, S.FAIL, surplus="late"),  # surplus: not counted
        trial(8, S.RUNNING, host="h"),  # not finished
        trial(9, S.WAITING),
    ]
    retried = P.retried_numbers(trials)
    assert [t.number for t in trials if P.counts(t, retried)] == [0, 1, 2, 4, 5]
    assert P.count_finished(trials) == 5


def test_running_trials_claim_slots_unless_old_and_unmarked():
    now = dt.datetime(2024, 1, 1, 12, 0, 0)
    fresh, old = now - dt.timedelta(seconds=10), now - dt.timedelta(seconds=600)
    cases = {
        "marked": (trial(0, S.RUNNING, host="h", start=old), True),
        "unmarked, just started": (trial(1, S.RUNNING, start=fresh), True),
        "unmarked, long ago (an older version's)": (trial(2, S.RUNNING, start=old), False),
        "surplus": (trial(3, S.RUNNING, host="h", surplus="late"), False),
        "waiting": (trial(4, S.WAITING), False),
        "counts": (trial(5, row={}), True),
    }
    for name, (t, expected) in cases.items():
        assert P.claims(t, set(), now=now) is expected, name
    # Today both unmarked trials started long ago: the marked one and the counting one claim.
    assert P.count_claimed([t for t, _ in cases.values()]) == 2


def test_surplus_when_earlier_trials_hold_the_slots_or_retry_the_same_trial():
    trials = [
        trial(0, row={}),
        trial(1, S.FAIL),
        trial(2, row={}),
        heartbeat_retry(3, 1),
        trial(4, S.FAIL, interrupted=True),
    ]
    # Trial 3 may run for a total of 3, not for a total of 2 (0 and 2 hold the slots).
    assert P.surplus_reason(trials, 3, 3) is None
    assert "already taken by trials before it" in P.surplus_reason(trials, 3, 2)
    # A second retry of trial 1 (two workers resumed at once) is surplus; a surplus twin
    # does not make a third copy surplus too.
    twin = trial(5, S.WAITING, retry_of=1)
    assert P.surplus_reason([*trials, twin], 5, 10) == "trial 3 already retries trial 1"
    dropped = trial(3, S.FAIL, retry_of=4, surplus="x")
    assert P.surplus_reason([trial(0), dropped, trial(6, S.WAITING, retry_of=4)], 6, 10) is None


def test_interrupted_trials_are_requeued_once_with_their_marks():
    trials = [
        trial(0, S.FAIL, interrupted=True, reference=True),
        trial(1, S.FAIL, interrupted=True, starting=True),
        trial(2, S.FAIL, interrupted=True),
        trial(3, S.WAITING, retry_of=2),  # 2 is already queued again
        trial(4, S.FAIL, interrupted=True),  # 4 was retried by 5, which was
        trial(5, S.FAIL, interrupted=True, retry_of=4),
    ]  # interrupted too: not again
    assert P.to_requeue(trials) == [
        ({"x": 0}, {"retry_of": 0, "reference": True}),
        ({"x": 1}, {"retry_of": 1, "starting": True}),
    ]


def test_an_interrupted_trial_the_heartbeat_already_retries_is_not_requeued():
    # The case the two definitions of "retried" disagreed on: this worker marked trial 0
    # interrupted while another worker's heartbeat failed it and queued trial 1 for it. Only
    # retry_of used to be looked at, so a resume queued a second retry.
    trials = [trial(0, S.FAIL, interrupted=True), heartbeat_retry(1, 0)]
    assert P.retried_numbers(trials) == {0}
    assert P.to_requeue(trials) == []
