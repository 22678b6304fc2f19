"""``python -m search.run``: listing, bad input, and a synthetic end-to-end run."""

from __future__ import annotations

import pytest

from search.results import read_json, read_trials
from search.run import build_parser, main


def test_list_spaces(capsys):
    assert main(["--list-spaces"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["cnn", "mobilenet", "mobilenet-cached", "mobilenet-head"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--space", "resnet"], "unknown space 'resnet'; registered spaces: cnn, mobilenet"),
        (
            ["--space", "cnn", "--engine", "ray"],
            "unknown engine 'ray'; choices: keras-tuner, optuna",
        ),
        (
            ["--space", "cnn", "--engine", "optuna", "--algorithm", "hyperband"],
            "unknown algorithm 'hyperband' for engine 'optuna'; "
            "choices: tpe, tpe-multivariate, random, cmaes",
        ),
        (
            ["--space", "cnn", "--engine", "keras-tuner", "--algorithm", "tpe"],
            "unknown algorithm 'tpe' for engine 'keras-tuner'; choices: random, bayesian, hyperband",
        ),
        (
            ["--space", "cnn", "--engine", "optuna", "--pruner", "asha"],
            "unknown pruner 'asha'; choices: median, hyperband, halving, none",
        ),
        (["--space", "cnn", "--subset", "1.5"], "--subset must be a fraction in (0, 1], got 1.5"),
        (
            ["--space", "mobilenet", "--weights", "/nonexistent/w.h5"],
            "--weights '/nonexistent/w.h5'",
        ),
        ([], "--space is required"),
    ],
)
def test_bad_input_names_the_value_and_the_choices(argv, message, capsys, tmp_path):
    assert main([*argv, "--synthetic", "--results", str(tmp_path), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "searches").exists() or not any((tmp_path / "searches").iterdir())


@pytest.mark.slow
def test_defaults_and_study_name(tmp_path, capsys):
    args = build_parser().parse_args(["--space", "cnn"])
    assert (args.engine, args.algorithm, args.trials, args.epochs) == ("optuna", None, 20, 10)
    code = main(
        [
            "--space",
            "cnn",
            "--engine",
            "keras-tuner",
            "--synthetic",
            "--trials",
            "1",
            "--epochs",
            "1",
            "--results",
            str(tmp_path),
            "--no-progress",
            "--seed",
            "4",
        ]
    )
    assert code == 0
    study_dir = tmp_path / "searches" / "cnn-keras-tuner-random"
    rows = read_trials(study_dir / "trials.jsonl")
    assert len(rows) == 1 and rows[0].number == 0
    info = read_json(study_dir / "study.json")
    assert info["seed"] == 4 and info["config"]["synthetic"] is True
    assert info["config"]["max_image_size"] == 32
    out = capsys.readouterr().out
    assert "best trial" in out and str(study_dir) in out
    # A resumed study refuses a different seed rather than mixing two searches.
    assert (
        main(
            [
                "--space",
                "cnn",
                "--engine",
                "keras-tuner",
                "--synthetic",
                "--trials",
                "2",
                "--results",
                str(tmp_path),
                "--no-progress",
                "--seed",
                "5",
            ]
        )
        == 2
    )
    assert "created with seed=4" in capsys.readouterr().err
