"""``Study``: a resumed study keeps the storage it recorded, or refuses another one; one rule
for the best trial."""

from __future__ import annotations

import pytest

from search.results import TrialRecord, read_json, write_json
from search.study import SearchError, Study

DATA = {"digest": "abc"}


def open_study(tmp_path, storage, **kw):
    study = Study("s", engine="optuna", algorithm="tpe", space="cnn", root=tmp_path)
    settings = {"trials": 3, "storage": storage, **kw}
    return study, study.open(seed=0, settings=settings, data=DATA, reference_configs=[])


def ran_a_trial(study):
    """Give ``study`` a finished trial's row."""
    study.append(
        TrialRecord(
            study="s",
            engine="optuna",
            algorithm="tpe",
            space="cnn",
            trial_id="0",
            number=0,
            state="COMPLETE",
            config={},
        )
    )


def test_resuming_without_storage_keeps_the_recorded_one_without_its_password(tmp_path):
    url = "postgresql://me:secret@db.example/art"
    study, _ = open_study(tmp_path, url)
    study, info = open_study(tmp_path, None)
    kept = "postgresql://me@db.example/art"
    assert info["config"]["storage"] == kept
    assert read_json(study.study_json)["config"]["storage"] == kept
    assert study.recorded_storage() == kept
    assert [run["config"]["storage"] for run in info["runs"]] == [kept, kept]
    assert "secret" not in study.study_json.read_text()


def test_resuming_with_another_storage_is_refused_and_nothing_is_written(tmp_path):
    study, _ = open_study(tmp_path, "postgresql://me:secret@db.example/art")
    ran_a_trial(study)
    before = study.study_json.read_bytes()
    with pytest.raises(SearchError) as exc:
        open_study(tmp_path, "postgresql://me:secret@other.example/art")
    message = str(exc.value)
    assert "\n" not in message and "secret" not in message
    assert "postgresql://me@db.example/art" in message
    assert "postgresql://me@other.example/art" in message
    assert "--storage" in message
    assert study.study_json.read_bytes() == before
    # Started on the default storage: another storage is refused too.
    other, _ = open_study(tmp_path / "b", None)
    ran_a_trial(other)
    with pytest.raises(SearchError, match=r"default SQLite file .*optuna\.db"):
        open_study(tmp_path / "b", "sqlite:////somewhere/else.db")


def test_a_study_that_never_ran_a_trial_takes_a_corrected_storage(tmp_path):
    # A mistyped URL: the first run failed to connect, before any trial.
    study, _ = open_study(tmp_path, "postgresql://me@db.exmaple/art")
    study, info = open_study(tmp_path, "postgresql://me:secret@db.example/art")
    assert info["config"]["storage"] == "postgresql://me@db.example/art"
    assert study.recorded_storage() == "postgresql://me@db.example/art"
    # A trial that ran in a child process (its log, before its row) counts as run.
    (study.dir / "logs").mkdir()
    (study.dir / "logs" / "trial-0.log").write_text("")
    with pytest.raises(SearchError, match="was run with --storage"):
        open_study(tmp_path, "postgresql://me@db.exmaple/art")


def test_the_same_storage_with_its_password_given_again_is_the_same_storage(tmp_path):
    study, _ = open_study(tmp_path, "postgresql://me:secret@db.example/art")
    ran_a_trial(study)
    _, info = open_study(tmp_path, "postgresql://me:secret@db.example/art")
    assert info["config"]["storage"] == "postgresql://me@db.example/art"
    _, info = open_study(tmp_path, "postgresql://me@db.example/art")  # PGPASSWORD's way
    assert "secret" not in study.study_json.read_text()


def test_an_older_study_json_with_a_password_loses_it_on_resume(tmp_path):
    study, _ = open_study(tmp_path, None)
    info = read_json(study.study_json)
    url = "postgresql://me:secret@db.example/art"
    info["config"]["storage"] = url
    info["runs"] = [{"started_at": "then", "config": {"storage": url}}]
    write_json(study.study_json, info)
    ran_a_trial(study)
    assert study.recorded_storage() == "postgresql://me@db.example/art"
    open_study(tmp_path, url)
    assert "secret" not in study.study_json.read_text()


def test_the_same_storage_written_another_way_is_accepted(tmp_path, monkeypatch):
    study, _ = open_study(tmp_path, None)
    default = f"sqlite:///{(study.dir / 'optuna.db').resolve()}"
    assert open_study(tmp_path, default)[1]["config"]["storage"] is None  # still "the default"
    monkeypatch.chdir(tmp_path)
    other, _ = open_study(tmp_path / "c", "sqlite:///rel.db")
    assert (
        open_study(tmp_path / "c", f"sqlite:///{tmp_path / 'rel.db'}")[1]["config"]["storage"]
        == "sqlite:///rel.db"
    )


def test_a_study_json_already_overwritten_by_a_storage_less_resume_still_knows_its_storage(
    tmp_path,
):
    # An older version replaced config.storage by None on a resume without --storage; the
    # first run's config still names the storage.
    url = "postgresql://me@db.example/art"
    study, info = open_study(tmp_path, url)
    info["config"] = {**info["config"], "storage": None}
    info["runs"].append({"started_at": "later", "config": {"storage": None}})
    write_json(study.study_json, info)
    assert open_study(tmp_path, None)[1]["config"]["storage"] == url


def test_resuming_after_the_space_changed_is_refused(tmp_path):
    study = Study("s", engine="optuna", algorithm="tpe", space="mobilenet", root=tmp_path)
    old = [{"image_size": 224, "fine_tune_layers": 54}]
    study.open(seed=0, settings={"storage": None}, data=DATA, reference_configs=old)
    # The same space resumes; tuples and lists of the same values are the same JSON.
    study.open(seed=0, settings={"storage": None}, data=DATA, reference_configs=list(old))
    before = read_json(study.study_json)
    new = [{**old[0], "fine_tune_schedule": "plateau"}]
    with pytest.raises(
        SearchError,
        match=r"another version of space 'mobilenet'.*added "
        r"fine_tune_schedule.*--study NAME",
    ):
        study.open(seed=0, settings={"storage": None}, data=DATA, reference_configs=new)
    assert read_json(study.study_json) == before  # nothing written


def test_one_rule_picks_the_best_trial_whatever_order_trials_finish_in(tmp_path, monkeypatch):
    """Trials 1 and 0 tie; trial 1 finishes first. The ranking gives a tie to the earlier
    trial (0), so the checkpoint and the kept models must follow it when it finishes."""
    import keras

    from search import trial as trial_mod
    from search.results import TrialRecord

    monkeypatch.setattr(trial_mod, "KEPT_MODELS", 1)
    study = Study("s", engine="optuna", algorithm="tpe", space="cnn", root=tmp_path)
    runner = trial_mod.TrialRunner.__new__(trial_mod.TrialRunner)
    runner.study = study
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    for number in (1, 0):  # as TrialRunner.train then run do: keep, then append the row
        record = TrialRecord(
            study="s",
            engine="optuna",
            algorithm="tpe",
            space="cnn",
            trial_id=str(number),
            number=number,
            state="COMPLETE",
            config={},
            val_accuracy=0.8,
        )
        assert study.save_if_best(record, model)
        runner.keep_model(record, model)
        study.append(record)
    best = study.best_record()
    assert best.trial_id == "0"
    assert read_json(study.checkpoint_meta)["trial_id"] == "0"
    assert study.checkpoint_of("0") == study.checkpoint_path and study.checkpoint_of("1") is None
    assert sorted(p.name for p in (study.dir / "models").iterdir()) == ["trial-0.keras"]
    # A later trial that only ties does not take the checkpoint.
    late = TrialRecord(
        study="s",
        engine="optuna",
        algorithm="tpe",
        space="cnn",
        trial_id="2",
        number=2,
        state="COMPLETE",
        config={},
        val_accuracy=0.8,
    )
    assert not study.save_if_best(late, model)
    assert not list(study.checkpoint_path.parent.glob("*.tmp.*"))
