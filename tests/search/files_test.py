"""search._files: atomic replacement and one-line messages (no TensorFlow)."""

import pytest

from search._files import first_line, replaced_atomically, write_text_atomically


def test_replaced_atomically_keeps_the_extension_and_replaces_on_success(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with replaced_atomically(target) as tmp:
        assert tmp.name == "model.tmp.keras"
        tmp.write_text("new")
        assert target.read_text() == "old"  # not replaced before the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_replaced_atomically_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "study.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with replaced_atomically(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.json"]


def test_write_text_atomically_without_extension(tmp_path):
    target = tmp_path / "README"
    write_text_atomically(target, "hé")
    assert target.read_text(encoding="utf-8") == "hé"


def test_first_line():
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(ValueError("  ")) == "ValueError"
    assert first_line(OSError("abcdef"), limit=3) == "abc"
