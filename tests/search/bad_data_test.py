"""Bad ``--data`` is one ``error:`` line (exit 2) from every command that reads the dataset.

Issue #10: no traceback, no silent wrong result, nothing written for a run that cannot start.
"""

from __future__ import annotations

import pytest

from baselines.run import main as baseline_main
from search.data.__main__ import main as data_main
from search.run import main as run_main


def _missing(tmp_path):
    return tmp_path / "no-such-folder"


def _empty(tmp_path):
    folder = tmp_path / "empty-folder"
    folder.mkdir()
    return folder


def _undecodable(tmp_path):
    folder = tmp_path / "junk-folder"
    for label in ("drawings", "painting"):
        (folder / label).mkdir(parents=True)
        (folder / label / "scan.jpg").write_bytes(b"this is not a JPEG")
    return folder


def _one_class(tmp_path):
    from tests.fixtures import make_class_folders

    return make_class_folders(tmp_path / "one-class", {"drawings": 21})


def _too_few(tmp_path):
    from tests.fixtures import make_class_folders

    return make_class_folders(tmp_path / "too-few", {"drawings": 21, "painting": 4})


def _case_twins(tmp_path):
    from tests.fixtures import make_class_folders

    return make_class_folders(
        tmp_path / "case-twins", {"Painting": 21, "painting": 21, "drawings": 21}
    )


COMMANDS = {
    "search.run": lambda data, results: run_main(
        [
            "--space",
            "cnn",
            "--data",
            str(data),
            "--results",
            str(results),
            "--no-progress",
            "--trials",
            "1",
            "--epochs",
            "1",
            "--in-process",
        ]
    ),
    "baselines.run": lambda data, results: baseline_main(
        ["cnn", "--data", str(data), "--results", str(results), "--epochs", "1", "--quiet"]
    ),
    "search.data": lambda data, results: data_main(
        ["--data", str(data), "--results", str(results)]
    ),
}

# What the first line of the error says for each kind of bad folder, and what else it says.
CASES = {
    "missing": (_missing, "that folder does not exist", "How to get the data"),
    "empty": (_empty, "that folder is empty", "How to get the data"),
    "undecodable": (_undecodable, "none of the 2 image files", "scan.jpg: UnidentifiedImageError"),
    "one-class": (
        _one_class,
        "only one class with usable images, 'drawings'",
        "at least two classes",
    ),
    "too-few": (_too_few, "class 'painting' has only 4 (in 4 files)", "20 stratified folds"),
    "case-twins": (_case_twins, "differ only in case", "Painting and "),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_data_folder_is_one_error_line_not_a_traceback(command, case, tmp_path, capsys):
    make, first_line_says, also_says = CASES[case]
    data = make(tmp_path)
    results = tmp_path / "results"
    assert COMMANDS[command](data, results) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, captured.err
    assert str(data) in errors[0] and first_line_says in errors[0], errors[0]
    assert also_says in captured.err  # the help below the first line, or which file and why
    assert "Traceback" not in captured.err
    # Nothing was written for a run that could not start.
    assert not (results / "data" / "split.json").exists()
    assert not (results / "searches").exists() and not (results / "baselines").exists()
