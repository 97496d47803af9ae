"""INT8 accuracy predictors (issue 21): FP32 predictor + drop model as one XGBoost file, the comparison
experiment on a synthetic INT8 data set, and the shipped file's precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.accuracy.collect import DATASET_FILE, META_FILE, collection_architectures
from hwnas.accuracy.compiled import CompiledPredictor
from hwnas.accuracy.int8_predictor import overlap, subtract
from hwnas.accuracy.model_file import read_predictor_file
from hwnas.accuracy.predictor import AccuracyPredictor
from hwnas.encoding import GeneLayout
from hwnas.errors import DataError
from experiment_script import load_experiment

SPACE = "fmnist-mbv3"


def _experiment():
    return load_experiment("int8_predictor")


def _write(folder: Path, n: int, *, int8: bool, seed: int = 0) -> list[dict]:
    """A data set whose FP32 label grows with width and whose INT8 drop grows with kernel size."""
    layout = GeneLayout(SPACE)
    archs = collection_architectures(SPACE, n, seed=seed)
    genes = layout.encode(archs).astype(float)
    rng = np.random.default_rng(seed)
    records = []
    for arch, g in zip(archs, genes):
        rec = {"arch": arch.to_dict(), "accuracy": 0.8 + 0.01 * g.mean() + rng.normal(0, 0.002)}
        if int8:
            rec["accuracy_int8"] = rec["accuracy"] - 0.02 * (arch.resolution == 28) - 0.005 * g[:5].mean()
        records.append(rec)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DATASET_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = {"space": SPACE, "supernet_sha256": "ab" * 32, "val_images": 0, "calib_images": 32, "calib_seed": 0}
    (folder / META_FILE).write_text(json.dumps({**meta, **({"precision": "int8"} if int8 else {})}))
    return records


def test_fp32_minus_drop_is_one_model_computing_the_difference():
    layout = GeneLayout(SPACE)
    rng = np.random.default_rng(0)
    genes = layout.random(120, rng)
    fp32 = AccuracyPredictor(SPACE, n_trials=0, n_jobs=1).fit(genes, rng.uniform(0.7, 0.9, 120))
    drop = AccuracyPredictor(SPACE, n_trials=0, n_jobs=1, bounded=False).fit(genes, rng.normal(0.01, 0.02, 120))
    both = subtract(fp32, drop)
    X = fp32.encoder_.transform(genes)
    raw = [m.booster_.inplace_predict(X, validate_features=False) for m in (fp32, drop, both)]
    np.testing.assert_allclose(raw[2], raw[0] - raw[1], atol=1e-6)
    np.testing.assert_allclose(both.predict(genes), np.clip(raw[0] - raw[1], 0, 1), atol=1e-6)  # compiled scorer


def test_experiment_compares_three_predictors_and_ships_the_best(tmp_path):
    _write(tmp_path / "int8", 40, int8=True)
    _write(tmp_path / "fp32", 60, int8=False)  # its first 40 subnets are the INT8 set's: left out
    out, ship = tmp_path / "int8_predictor.json", tmp_path / "ship" / "accuracy_xgb.json"
    assert _experiment().main(["--data", str(tmp_path / "int8" / DATASET_FILE), "--fp32-data",
                               str(tmp_path / "fp32" / DATASET_FILE), "--trials", "0", "--threads", "1",
                               "--out", str(out), "--ship", str(ship)]) == 0
    result = json.loads(out.read_text())
    assert set(result["candidates"]) == {"fp32", "fp32+drop", "int8"}
    assert (result["n_heldout"], result["n_train"], result["n_extra_fp32"]) == (8, 32, 20)
    best = result["candidates"][result["best"]]
    assert all(best["kendall_tau"] >= c["kendall_tau"] for c in result["candidates"].values())
    saved = read_predictor_file(ship)
    assert saved.precision == "int8" and saved.meta["int8_predictor"]["kind"] == result["best"]
    assert CompiledPredictor.load(ship).predict(GeneLayout(SPACE).random(5, np.random.default_rng(1))).shape == (5,)


def test_fp32_data_set_without_int8_labels_is_refused(tmp_path):
    _write(tmp_path, 20, int8=False)
    with pytest.raises(DataError, match="precision int8|accuracy_int8"):
        _experiment().main(["--data", str(tmp_path / DATASET_FILE), "--trials", "0", "--no-ship",
                            "--out", str(tmp_path / "r.json")])


def test_overlap_matches_networks_not_records():
    archs = collection_architectures(SPACE, 6)
    records = [{"arch": a.to_dict()} for a in archs]
    assert overlap(records, records[2:4], SPACE).tolist() == [False, False, True, True, False, False]


def test_fit_predictor_on_int8_labels_writes_an_int8_predictor(tmp_path):
    from hwnas.cli import main

    _write(tmp_path, 30, int8=True)
    out = tmp_path / "int8_xgb.json"
    assert main(["fit-predictor", "--data", str(tmp_path / DATASET_FILE), "--target", "accuracy_int8", "--trials",
                 "0", "--threads", "1", "--out", str(out), "--no-progress"]) == 0
    assert read_predictor_file(out).precision == "int8"
    fp32 = tmp_path / "fp32_xgb.json"
    assert main(["fit-predictor", "--data", str(tmp_path / DATASET_FILE), "--trials", "0", "--threads", "1",
                 "--out", str(fp32), "--no-progress"]) == 0
    assert read_predictor_file(fp32).precision == "fp32"
