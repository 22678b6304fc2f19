"""A small fake results tree for dashboard tests (and, scaled up, for bench/dashboard_bench.py).

It follows the contract in ``search/results/``: two baselines, one Keras Tuner study written
as a plain table and one real Optuna study in SQLite, created through optuna's own API and
mirrored into ``trials.jsonl`` the way the Optuna engine does. The accuracies are a smooth
made-up function of the hyperparameters plus noise: these fixtures test drawing, not training.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from search._metrics import classification_metrics
from search.results import TrialRecord, append_trial, best_trial, read_trials, study_dir, write_json

CLASSES = ["drawings", "engraving", "iconography", "painting", "sculpture"]
# Roughly the art-images test split: drawings and engraving are the small, confusable classes.
TEST_SUPPORT = [122, 84, 231, 228, 191]
VAL_SUPPORT = [110, 76, 210, 207, 174]

KT_STUDY = "kt_random_cnn"
OPTUNA_STUDY = "optuna_tpe_cnn"


def make_report(recalls: list[float], support: list[int], seed: int) -> dict:
    """A classification report whose per-class recall is close to ``recalls``.

    Mistakes on drawings go mostly to engraving and back, the confusion the page must show.
    """
    rng = random.Random(seed)
    y_true, y_pred = [], []
    for true, (recall, n) in enumerate(zip(recalls, support)):
        for _ in range(n):
            y_true.append(true)
            if rng.random() < recall:
                y_pred.append(true)
            elif true in (0, 1) and rng.random() < 0.7:
                y_pred.append(1 - true)
            else:
                y_pred.append(rng.choice([c for c in range(len(CLASSES)) if c != true]))
    return classification_metrics(y_true, y_pred, CLASSES)


def _curve(final: float, epochs: int, rng: random.Random, start: float = 0.35) -> list[float]:
    return [
        round(
            min(0.999, final - (final - start) * math.exp(-3.0 * e / epochs) + rng.gauss(0, 0.006)),
            4,
        )
        for e in range(1, epochs + 1)
    ]


def write_baselines(root: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    specs = {
        "cnn": dict(
            published=0.85,
            recalls=[0.62, 0.66, 0.93, 0.90, 0.88],
            params=1_245_189,
            epochs=12,
            wall=412.0,
            phases=None,
        ),
        "mobilenet": dict(
            published=0.94,
            recalls=[0.86, 0.84, 0.98, 0.96, 0.95],
            params=2_264_389,
            epochs=14,
            wall=655.0,
            phases=(8, 6),
        ),
    }
    for i, (name, spec) in enumerate(specs.items()):
        test = make_report(spec["recalls"], TEST_SUPPORT, seed + 10 + i)
        val = make_report([min(1.0, r + 0.01) for r in spec["recalls"]], VAL_SUPPORT, seed + 20 + i)
        epochs = spec["epochs"]
        history = {
            "accuracy": _curve(min(0.99, test["accuracy"] + 0.06), epochs, rng),
            "val_accuracy": _curve(val["accuracy"], epochs, rng),
            "loss": [round(1.6 * math.exp(-0.25 * e) + 0.1, 4) for e in range(epochs)],
            "val_loss": [round(1.6 * math.exp(-0.2 * e) + 0.2, 4) for e in range(epochs)],
            "epoch_time_s": [round(spec["wall"] / epochs, 2)] * epochs,
        }
        if spec["phases"]:
            frozen, fine = spec["phases"]
            history["phase"] = ["frozen"] * frozen + ["fine_tune"] * fine
        write_json(
            root / "baselines" / name / "metrics.json",
            {
                "name": name,
                "published_accuracy": spec["published"],
                "test": test,
                "val": val,
                "history": history,
                "params": {"total": spec["params"], "trainable": spec["params"] - 3_000},
                "wall_time_s": spec["wall"],
                "config": {"epochs": epochs},
                "seed": seed,
                "versions": {"python": "3.x"},
            },
        )


def _sample_config(rng: random.Random) -> dict:
    return {
        "conv_blocks": rng.randint(2, 5),
        "filters": rng.choice([16, 32, 64]),
        "dropout": round(rng.uniform(0.0, 0.5), 3),
        "learning_rate": 10 ** rng.uniform(-4, -2),
        "optimizer": rng.choice(["adam", "sgd"]),
    }


def _score(config: dict, rng: random.Random) -> tuple[float, int, float]:
    """(val accuracy, parameter count, wall time) of a made-up model."""
    lr_penalty = abs(math.log10(config["learning_rate"]) + 3.0) * 0.05
    accuracy = (
        0.70
        + 0.03 * config["conv_blocks"]
        + 0.0008 * config["filters"]
        - 0.1 * abs(config["dropout"] - 0.25)
        - lr_penalty
        - (0.04 if config["optimizer"] == "sgd" else 0.0)
        + rng.gauss(0, 0.01)
    )
    params = int(config["filters"] ** 2 * 9 * config["conv_blocks"] * 12 + 50_000)
    wall = 20.0 + params / 4_000 + rng.uniform(0, 15)
    return min(0.985, max(0.2, accuracy)), params, wall


def _best_json(record: TrialRecord, seed: int) -> dict:
    # The best model's test accuracy sits a little under its validation accuracy.
    recalls = [max(0.3, record.val_accuracy - d) for d in (0.15, 0.12, -0.04, -0.02, -0.01)]
    return {
        "trial_id": record.trial_id,
        "config": record.config,
        "val_accuracy": record.val_accuracy,
        "test": make_report([min(1.0, r) for r in recalls], TEST_SUPPORT, seed),
        "params": record.params,
        "wall_time_s": record.wall_time_s,
    }


def write_keras_tuner_study(
    root: Path, name: str = KT_STUDY, n_trials: int = 12, seed: int = 1, with_best: bool = True
) -> Path:
    rng = random.Random(seed)
    directory = study_dir(name, root)
    write_json(
        directory / "study.json",
        {
            "study": name,
            "engine": "keras-tuner",
            "algorithm": "random",
            "space": "cnn",
            "seed": seed,
        },
    )
    for number in range(n_trials):
        config = _sample_config(rng)
        config["tuner/trial_id"] = f"{number:04d}"  # bookkeeping Keras Tuner leaves in the config
        common = dict(
            study=name,
            engine="keras-tuner",
            algorithm="random",
            space="cnn",
            trial_id=f"{number:04d}",
            number=number,
            config=config,
        )
        if number == 3:  # one trial that ran out of memory
            append_trial(
                directory / "trials.jsonl",
                TrialRecord(state="FAIL", error="ResourceExhaustedError: OOM", **common),
            )
            continue
        accuracy, params, wall = _score(config, rng)
        epochs = 8
        append_trial(
            directory / "trials.jsonl",
            TrialRecord(
                state="COMPLETE",
                val_accuracy=round(accuracy, 4),
                epochs_run=epochs,
                wall_time_s=round(wall, 1),
                params=params,
                trainable_params=params,
                history={
                    "accuracy": _curve(min(0.99, accuracy + 0.05), epochs, rng),
                    "val_accuracy": _curve(accuracy, epochs, rng)[:-1] + [round(accuracy, 4)],
                },
                **common,
            ),
        )
    if with_best:
        _write_best(directory, seed)
    return directory


def write_optuna_study(
    root: Path,
    name: str = OPTUNA_STUDY,
    n_trials: int = 15,
    seed: int = 2,
    with_best: bool = True,
    sampler: str = "tpe",
) -> Path:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(seed)
    directory = study_dir(name, root)
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "optuna.db"
    # Written the way the engine writes it: a URL relative to the directory the search ran from.
    storage_url = f"sqlite:///results/searches/{name}/optuna.db"
    write_json(
        directory / "study.json",
        {
            "study": name,
            "engine": "optuna",
            "algorithm": sampler,
            "space": "cnn",
            "seed": seed,
            "storage": storage_url,
            "optuna_study_name": name,
        },
    )
    samplers = {
        "tpe": optuna.samplers.TPESampler(seed=seed),
        "random": optuna.samplers.RandomSampler(seed=seed),
    }
    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{db}",
        direction="maximize",
        sampler=samplers[sampler],
        pruner=optuna.pruners.NopPruner(),
    )

    def objective(trial: optuna.Trial) -> float:
        config = {
            "conv_blocks": trial.suggest_int("conv_blocks", 2, 5),
            "filters": trial.suggest_categorical("filters", [16, 32, 64]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
            "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd"]),
        }
        if trial.number == 4:
            raise RuntimeError("loss became NaN")
        accuracy, params, wall = _score(config, rng)
        curve = _curve(accuracy, 8, rng)[:-1] + [round(accuracy, 4)]
        trial.set_user_attr("params", params)
        trial.set_user_attr("wall_time_s", round(wall, 1))
        trial.set_user_attr(
            "history",
            {"accuracy": _curve(min(0.99, accuracy + 0.05), 8, rng), "val_accuracy": curve},
        )
        for step, value in enumerate(curve):
            trial.report(value, step)
            if trial.number == 6 and step == 2:  # a pruned trial, stopped early
                raise optuna.TrialPruned()
        return round(accuracy, 4)

    study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    states = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAIL": "FAIL"}
    for t in study.trials:
        history = t.user_attrs.get("history", {})
        if t.state.name == "PRUNED":
            history = {k: v[: len(t.intermediate_values)] for k, v in history.items()}
        append_trial(
            directory / "trials.jsonl",
            TrialRecord(
                study=name,
                engine="optuna",
                algorithm=sampler,
                space="cnn",
                trial_id=str(t.number),
                number=t.number,
                state=states[t.state.name],
                config=dict(t.params),
                val_accuracy=t.value,
                epochs_run=len(t.intermediate_values),
                wall_time_s=t.user_attrs.get("wall_time_s", 0.0),
                params=t.user_attrs.get("params"),
                history=history,
                error="RuntimeError: loss became NaN" if t.state.name == "FAIL" else None,
            ),
        )
    if with_best:
        _write_best(directory, seed)
    return directory


def _write_best(directory: Path, seed: int) -> None:
    best = best_trial(read_trials(directory / "trials.jsonl"))  # the engines' rule
    write_json(directory / "best.json", _best_json(best, seed + 100))


def write_results_tree(root: str | Path, seed: int = 0) -> Path:
    """The full fixture: 2 baselines, one Keras Tuner study, one Optuna study. Returns ``root``."""
    root = Path(root)
    write_baselines(root, seed)
    write_keras_tuner_study(root, seed=seed + 1)
    write_optuna_study(root, seed=seed + 2)
    return root
