"""The trials table on disk: torn and unreadable lines are kept apart, reported, never merged."""

from __future__ import annotations

import json

from search.results import (
    TrialRecord,
    append_trial,
    load_results,
    read_table,
    read_trials,
    set_aside_unreadable,
    write_json,
)


def row(n: int, state: str = "COMPLETE", acc: float | None = 0.5, study: str = "s") -> TrialRecord:
    return TrialRecord(
        study,
        "optuna",
        "tpe",
        "cnn",
        str(n),
        n,
        state,
        {"units": 8 + n},
        val_accuracy=acc if state == "COMPLETE" else None,
        epochs_run=1,
        error=None if state == "COMPLETE" else "boom",
    )


def torn(path, n: int) -> None:
    """What a crash mid-write (or a full disk) leaves: half a row, no newline."""
    line = json.dumps(row(n).to_dict())
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line[: len(line) // 2])


def test_append_after_a_torn_line_keeps_the_new_row_on_its_own_line(tmp_path):
    path = tmp_path / "trials.jsonl"
    for n in range(2):
        append_trial(path, row(n))
    torn(path, 2)
    append_trial(path, row(3))
    append_trial(path, row(4))
    table = read_table(path)
    assert [r.number for r in table.records] == [0, 1, 3, 4]
    assert [u.line for u in table.unreadable] == [3]
    assert path.read_bytes().endswith(b"\n")
    assert len(path.read_text().splitlines()) == 5  # the torn fragment stays, on its own line


def test_reading_reports_every_unreadable_line_by_number(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, row(0))
    with open(path, "ab") as fh:
        fh.write(b"\x00\x00\x00\xff\xfe garbage\n")  # a crash can leave NULs / binary junk
        fh.write(b"[1, 2, 3]\n")  # JSON, but not a row
        fh.write(json.dumps({**row(9).to_dict(), "state": "DONE"}).encode() + b"\n")
        fh.write(b"\n")  # blank lines are not rows and not errors
    append_trial(path, row(1))
    torn(path, 2)  # the last line, no newline
    table = read_table(path)
    assert [r.number for r in table.records] == [0, 1]
    assert [u.line for u in table.unreadable] == [2, 3, 4, 7]
    assert all(u.reason for u in table.unreadable)
    assert table.describe() == f"{path}: 4 lines could not be read (lines 2, 3, 4, 7)"
    assert read_trials(path) == table.records  # the plain reader gives the same good rows


def test_a_row_glued_onto_a_torn_line_by_an_older_version_is_recovered(tmp_path):
    # Before appends checked for a torn line, the next row was written onto the same line;
    # that row is whole and is read back, the torn fragment is reported.
    path = tmp_path / "trials.jsonl"
    append_trial(path, row(0))
    torn(path, 1)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row(2).to_dict()) + "\n")
    table = read_table(path)
    assert [r.number for r in table.records] == [0, 2]
    assert [u.line for u in table.unreadable] == [2]
    assert (
        table.unreadable[0].text.startswith('{"study": "s"')
        and '"trial_id": "2"' not in table.unreadable[0].text
    )


def test_set_aside_moves_unreadable_lines_beside_the_table_and_loses_nothing(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trial(path, row(0))
    torn(path, 1)
    append_trial(path, row(2))
    with open(path, "ab") as fh:
        fh.write(b"not json\n")
    original = path.read_bytes()

    moved = set_aside_unreadable(path)
    assert [u.line for u in moved] == [2, 4]
    aside = tmp_path / "trials.jsonl.unreadable"
    kept, set_aside = path.read_text().splitlines(), aside.read_text().splitlines()
    assert [json.loads(line)["number"] for line in kept] == [0, 2]
    assert set_aside == [original.decode().splitlines()[1], "not json"]
    assert sorted(kept + set_aside) == sorted(original.decode().splitlines())
    assert read_table(path).unreadable == []
    # Idempotent: nothing left to move, nothing duplicated.
    assert set_aside_unreadable(path) == []
    assert aside.read_text().splitlines() == set_aside
    assert set_aside_unreadable(tmp_path / "missing.jsonl") == []


def test_the_results_tree_notes_unreadable_rows_per_study(tmp_path):
    d = tmp_path / "searches" / "torn-study"
    write_json(
        d / "study.json",
        {"study": "torn-study", "engine": "optuna", "algorithm": "tpe", "space": "cnn"},
    )
    for n in range(2):
        append_trial(d / "trials.jsonl", row(n, study="torn-study"))
    torn(d / "trials.jsonl", 2)
    (d / "trials.jsonl.unreadable").write_text("{half a row\n")
    tree = load_results(tmp_path)
    (study,) = tree.studies
    assert [r.number for r in study.trials] == [0, 1]
    assert study.unreadable_lines == [3]
    text = "\n".join(tree.notes)
    assert f"Study 'torn-study': 1 line of {d / 'trials.jsonl'} could not be read (line 3)" in text
    assert f"1 earlier unreadable line is kept in {d / 'trials.jsonl.unreadable'}" in text
