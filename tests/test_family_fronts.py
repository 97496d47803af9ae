"""experiments/family_fronts.py: which exported models it takes from a quickstart run, and its plot."""

from __future__ import annotations

import json
from pathlib import Path
from experiment_script import load_experiment


def _module():
    return load_experiment("family_fronts")


def _run(tmp_path: Path, models: list[dict]) -> Path:
    (tmp_path / "export").mkdir(parents=True)
    (tmp_path / "export" / "summary.json").write_text(json.dumps({"models": models}))
    return tmp_path


def test_only_verified_fp32_models_with_an_accuracy_are_taken(tmp_path):
    onnx = tmp_path / "a.onnx"
    onnx.write_bytes(b"graph")
    arch = {"depth": [1, 1, 1], "kernel": [3] * 9, "width": [0, 0, 0], "resolution": 24}
    run = _run(tmp_path, [
        {"name": "ok", "status": "ok", "arch": arch, "fp32": {"path": str(onnx), "accuracy": 0.9}},
        {"name": "failed", "status": "failed", "arch": arch, "fp32": None},
        {"name": "no-accuracy", "status": "ok", "arch": arch, "fp32": {"path": str(onnx), "accuracy": None}},
    ])
    models = _module().exported_models("fmnist-cnn", run, batch=1)
    assert [(name, acc) for name, acc, _ in models] == [("fmnist-cnn/ok", 0.9)]
    assert models[0][2] == (b"graph", (1, 1, 24, 24))  # the space's channels and the model's resolution


def test_plot_marks_references_and_one_line_per_family(tmp_path):
    rows = [{"model": "fmnist-cnn/a", "test_accuracy": 0.9, "latency_ms_now": 0.05, "exported": True},
            {"model": "fmnist-cnn/b", "test_accuracy": 0.93, "latency_ms_now": 0.2, "exported": True},
            {"model": "fmnist-mbv3/c", "test_accuracy": 0.91, "latency_ms_now": 0.25, "exported": True},
            {"model": "mlp", "test_accuracy": 0.87, "latency_ms_now": 0.07, "beaten_by": ["fmnist-cnn/a"]}]
    rows += [{"model": f"{space}/d", "test_accuracy": 0.92, "latency_ms_now": 0.1, "exported": True}
             for space in ("fmnist-vgg", "fmnist-resvgg", "fmnist-x", "fmnist-y", "fmnist-z")]
    path = tmp_path / "fronts.png"
    labels = _module().plot(rows, path, "cpu-1thread")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(labels) == 7 and all(label.endswith("(searched, exported)") for label in labels)  # none dropped
