"""``python -m search.front``: a study's front, chosen on validation, each kept model scored
once on the test split and tabulated (issue #21). The trials' figures are written by hand;
their models are constant classifiers, so each test score is known from the split's counts."""

from __future__ import annotations

import json
import shutil

from search.front import FRONT_JSON
from search.front import main as front_main
from search.results import append_trial, write_json
from tests.fixtures import completed_trial, save_constant_model

# (number, validation accuracy, latency ms, the class its constant model always answers):
# 1 is beaten by 0 (slower and less accurate), 3's model was not kept.
TRIALS = [(0, 0.70, 2.0, 0), (1, 0.60, 3.0, 1), (2, 0.80, 4.0, 2), (3, 0.90, 8.0, 3)]


def study_folder(root, manifest):
    folder = root / "searches" / "s"
    for number, val, latency, answer in TRIALS:
        if number != 3:
            model = save_constant_model(
                folder / "models" / f"trial-{number}.keras",
                outputs=len(manifest.class_names),
                answer=answer,
                class_names=manifest.class_names,
            )
        config = {"image_size": 16, "answer": answer}
        costs = {"params": 1000 * (number + 1), "latency_ms": latency, "size_mb": 0.01}
        append_trial(folder / "trials.jsonl", completed_trial("s", number, val, config, **costs))
    import keras

    from search.model_io import save_model

    save_model(
        keras.saving.load_model(model),
        folder / "best_model.keras",
        manifest.class_names,
        16,
        manifest.path,
    )
    write_json(folder / "study.json", {"study": "s", "engine": "optuna", "algorithm": "nsga2"})
    write_json(folder / "best.json", {"trial_id": "3", "val_n": 100})
    return folder


def test_each_front_model_is_scored_once_on_test_and_tabulated(
    split_results, tmp_path, capsys, monkeypatch
):
    manifest = split_results[0]
    folder = study_folder(tmp_path, manifest)
    assert front_main(["--study", "s", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [line.split(" | ")[0] for line in table[1:]] == ["| 0", "| 2", "| 3"]

    # The constant model answering class k scores the share of class k among test images.
    test = manifest.subset("test")
    share = {
        k: sum(e["label"] == name for e in test) / len(test)
        for k, name in enumerate(manifest.class_names)
    }
    kept = json.loads((folder / FRONT_JSON).read_text())
    assert kept["split"] == manifest.digest
    assert set(kept["test"]) == {"0", "2"}  # 1 is off the front, 3's model is gone
    assert abs(kept["test"]["2"]["accuracy"] - share[2]) < 1e-9
    assert f"{share[2]:.1%}" in table[2]
    assert "not scored" in table[3]
    assert "70.0% ± 4.6%" in table[1]  # validation with its standard error on best.json's 100

    # Run again: the scores are read from front.json, the test split is not read again.
    import search.export

    def no_test(*args, **kwargs):
        raise AssertionError("the test split was read again")

    monkeypatch.setattr(search.export, "test_score", no_test)
    assert front_main(["--study", "s", "--results", str(tmp_path)]) == 0
    assert f"{share[2]:.1%}" in capsys.readouterr().out

    # The results without the models (as committed): the kept scores, nothing scored.
    shutil.rmtree(folder / "models")
    for path in folder.glob("best_model*"):
        path.unlink()
    assert front_main(["--study", "s", "--results", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert f"{share[2]:.1%}" in captured.out and "note: study 's' has no best model" in captured.err
    assert json.loads((folder / FRONT_JSON).read_text()) == kept


def test_nothing_to_tabulate_is_one_error_line(tmp_path, capsys):
    assert front_main(["--study", "nope", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: no study 'nope'")

    folder = tmp_path / "searches" / "u"
    append_trial(folder / "trials.jsonl", completed_trial("u", 0, 0.5, {}))  # no latency measured
    write_json(folder / "study.json", {"study": "u", "engine": "optuna", "algorithm": "tpe"})
    assert front_main(["--study", "u", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: study 'u' has no completed trial with a measured latency_ms: run the search "
        "without --no-latency (latency and size are measured per completed trial)"
    )
