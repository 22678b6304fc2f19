"""Models that lost their class names (issue #20, defect 6): a bundle's export.json still names
them; a lone model file without them is scored with a warning, not silently by index."""

from __future__ import annotations

import json

from search.predict import main
from tests.fixtures import make_class_folders, save_constant_model


def _bundle_without_model_json(folder):
    """A bundle whose model.json was deleted: model.keras (no sidecar) and export.json."""
    save_constant_model(folder / "model.keras", 2, answer=1)
    (folder / "export.json").write_text(
        json.dumps(
            {
                "class_names": ["drawings", "painting"],
                "image_size": 16,
                "formats": {"keras": {"file": "model.keras", "status": "ok"}},
            }
        )
    )
    return folder


def test_a_bundle_without_model_json_takes_the_class_names_from_export_json(tmp_path, capsys):
    bundle = _bundle_without_model_json(tmp_path / "bundle")
    images = make_class_folders(tmp_path / "images", {"x": 1})
    for model in (bundle, bundle / "model.keras"):
        assert main([str(model), str(images), "--json"]) == 0
        captured = capsys.readouterr()
        row = json.loads(captured.out)[0]
        assert row["class"] == "painting" and [t["class"] for t in row["top"]] == [
            "painting",
            "drawings",
        ]
        assert "warning" not in captured.err


def test_a_lone_model_without_class_names_prints_indices_with_a_warning(tmp_path, capsys):
    model = save_constant_model(tmp_path / "foreign.keras", 3, answer=2)
    images = make_class_folders(tmp_path / "images", {"x": 1})
    assert main([str(model), str(images)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "keras model" in warnings[0] and str(model) in warnings[0]
    assert "no class names" in warnings[0] and "output indices 0-2" in warnings[0]
    assert ": 2   (2 1.00" in captured.out
