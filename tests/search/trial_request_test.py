"""``TrialRequest``: one object per trial, from the engine to the process that trains it; what
crosses to a child process and what stays in the search process."""

from __future__ import annotations

import dataclasses
import pickle
import threading

import pytest

from search.study import WarmStart
from search.trial import ConfigurationError, TrialRequest, TrialRunner
from spaces import BuildContext, get_space


class Unpicklable:
    """An engine callback like Optuna's pruning callback: it holds what cannot be pickled."""

    def __init__(self):
        self.lock = threading.Lock()


def test_ids_and_numbers_become_plain_values():
    import numpy as np

    request = TrialRequest(
        trial_id=7,
        number=np.int64(7),
        epochs=np.int32(3),
        keep_weights=np.bool_(True),
        callbacks=[],
    )
    assert (request.trial_id, request.number, request.epochs) == ("7", 7, 3)
    assert type(request.number) is int and request.keep_weights is True
    assert request.callbacks == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.epochs = 4


def test_the_engines_callbacks_stay_in_the_parent_and_the_rest_crosses():
    warm = WarmStart(from_trial="3", weights="/w.weights.h5", initial_epoch=2)
    request = TrialRequest(
        trial_id="4",
        number=4,
        epochs=5,
        warm_start=warm,
        keep_weights=True,
        callbacks=[Unpicklable()],
        prune_exceptions=(KeyError,),
    )
    with pytest.raises(TypeError):
        pickle.dumps(request)
    child = pickle.loads(pickle.dumps(request.for_child()))
    assert child == dataclasses.replace(request, callbacks=(), prune_exceptions=())
    assert child.warm_start == warm and child.keep_weights is True


def test_keeping_weights_needs_a_study():
    runner = TrialRunner(get_space("cnn"), data=None, ctx=BuildContext(num_classes=2))
    with pytest.raises(ConfigurationError, match="keeping weights needs a study"):
        runner.run(None, TrialRequest(trial_id="0", number=0, epochs=1, keep_weights=True))
