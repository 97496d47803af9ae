"""The command line with once-for-all's files and without an accuracy predictor (issue 19).

* ``hwnas search``/``predict`` read once-for-all's ``acc_predictor.pth`` (by content) and a folder
  of its ``<r>_lookup_table.yaml`` as a device, and search only resolutions both cover;
* latency-only use: ``predict`` without a predictor, ``search --objectives latency,macs``;
* ``hwnas export`` settings for exports without ImageNet.

The YAML tables are written from hwnas's own OFA keys with random means (their parity with OFA's
``MBv3LatencyTable`` is tests/test_ofa_latency_table.py's job); the predictors are random state
dicts in OFA's two layouts (parity: tests/test_ofa_predictor.py). No ``ofa`` import, so these run fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hwnas.accuracy.ofa_predictor import load_ofa_predictor
from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.encoding import GeneLayout
from hwnas.errors import ConfigError
from hwnas.export.settings import ExportSettings
from hwnas.latency.ofa_table import load_ofa_latency_table, ofa_keys
from hwnas.latency.table import enumerate_entries
from hwnas.search.evaluated import read_evaluated
from hwnas.space import get_space
from search_fakes import fake_search_env

OFA = get_space("ofa-mbv3-w1.0")
TABLE_RESOLUTIONS = (160, 176)


def write_ofa_tables(folder: Path, resolutions=TABLE_RESOLUTIONS, space=OFA, seed: int = 0) -> Path:
    """once-for-all YAML tables (random means) for ``resolutions`` of ``space`` (experiments use it too)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for r in resolutions:
        keys = {k for e in enumerate_entries(space, [r]) for k in ofa_keys(space, e, r)}
        lut = {k: {"mean": float(rng.uniform(0.1, 2.0)), "count": 10} for k in sorted(keys)}
        (folder / f"{r}_lookup_table.yaml").write_text(yaml.safe_dump(lut))
    return folder


def arch_encoder_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """``ofa.nas`` AccuracyPredictor's state dict: 4 image sizes (OFA's default 128..224) + 20 x (3 + 3)."""
    g = torch.Generator().manual_seed(seed)
    n_in, hidden = 4 + 20 * 6, 32
    return {"layers.0.0.weight": torch.randn(hidden, n_in, generator=g) / 4, "layers.0.0.bias": torch.zeros(hidden),
            "layers.1.weight": torch.randn(1, hidden, generator=g) / 4, "base_acc": torch.tensor(0.7)}


@pytest.fixture
def ofa_user(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tables = write_ofa_tables(tmp_path / "mydevice")
    torch.save({"state_dict": arch_encoder_state()}, tmp_path / "acc_predictor.pth")
    return tmp_path, tables


def test_search_with_ofa_predictor_and_yaml_tables(ofa_user):
    tmp, tables = ofa_user
    assert main(["search", "--space", OFA.name, "--predictor", "acc_predictor.pth", "--device", str(tables),
                 "--budget-ms", "1000", "--evaluations", "300", "--population", "16", "--out", "run",
                 "--no-progress", "--no-plot"]) == 0
    config = json.loads(Path("run/config.json").read_text())
    # the table covers 160 and 176, the predictor's encoder 128/160/192/224: only 160 is searched
    assert config["resolutions"] == [160] and config["devices"] == ["mydevice"]
    layout = GeneLayout(OFA)
    front = json.loads(Path("run/front.json").read_text())
    front_genes = np.vstack([layout.encode(Architecture.from_dict(r["arch"], OFA)) for r in front])
    predictor = load_ofa_predictor(tmp / "acc_predictor.pth", OFA)
    table = load_ofa_latency_table(tables, OFA)
    np.testing.assert_allclose([r["predicted"]["accuracy"] for r in front], predictor.predict(front_genes),
                               rtol=1e-12)
    np.testing.assert_allclose([r["predicted"]["latency_ms"]["mydevice"] for r in front],
                               table.predict_genes(front_genes), rtol=1e-12)


def test_predictor_and_tables_without_a_common_resolution_are_refused(ofa_user, capsys):
    tmp, tables = ofa_user
    (tables / "160_lookup_table.yaml").unlink()  # left: 176, which the predictor does not encode
    assert main(["search", "--space", OFA.name, "--predictor", "acc_predictor.pth", "--device", str(tables),
                 "--budget-ms", "1000", "--out", "run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no resolution in common" in err and "--resolutions 224" in err and not Path("run").exists()


def test_predict_reads_ofa_files_and_works_without_a_predictor(ofa_user, capsys):
    tmp, tables = ofa_user
    arch = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": [160]}
    Path("arch.json").write_text(json.dumps(arch))
    assert main(["predict", "--arch", "arch.json", "--space", OFA.name, "--predictor", "acc_predictor.pth",
                 "--device", str(tables), "--json"]) == 0
    with_predictor = json.loads(capsys.readouterr().out)
    assert isinstance(with_predictor["predicted"]["accuracy"], float)

    assert main(["predict", "--arch", "arch.json", "--space", OFA.name, "--device", str(tables), "--json"]) == 0
    latency_only = json.loads(capsys.readouterr().out)
    assert latency_only["predicted"]["accuracy"] is None
    assert latency_only["predicted"]["latency_ms"] == with_predictor["predicted"]["latency_ms"]
    assert latency_only["macs"] == with_predictor["macs"] > 0

    assert main(["predict", "--arch", "arch.json", "--space", OFA.name, "--device", str(tables)]) == 0
    text = capsys.readouterr().out
    assert "not predicted" in text and "--predictor" in text and "ms on mydevice" in text and "MACs" in text


# --------------------------------------------------------------------------------- latency-only search
@pytest.fixture
def env(tmp_path, monkeypatch):
    return fake_search_env(tmp_path, monkeypatch)


def test_latency_only_search_needs_no_predictor(env):
    out = env["tmp"] / "lat"
    assert main(["search", "--space", "fmnist-mbv3", "--device", env["a"], "--objectives", "latency,macs",
                 "--budget-ms", "0.5", "1.0", "--evaluations", "400", "--population", "16", "--out", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["predictor"] is None
    assert not (out / "pareto.png").exists()  # nothing to plot accuracy against
    front = json.loads((out / "front.json").read_text())
    assert front and all(r["predicted"]["accuracy"] is None for r in front)
    ev = read_evaluated(out)
    lat = ev.latency_ms["dev-a"]
    for pick in json.loads((out / "picks.json").read_text()):
        ok = ev.feasible & (lat <= pick["budget_ms"])
        assert pick["macs"] == ev.macs[ok].max()  # the largest network that fits


def test_accuracy_objective_without_a_predictor_names_the_alternative(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no predictors/<space>/ here
    table = Path(__file__).resolve().parents[1] / "latency_tables/cpu-1thread/fmnist-mbv3.json"  # shipped
    assert main(["search", "--space", "fmnist-mbv3", "--device", str(table), "--budget-ms", "1",
                 "--out", "x", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "accuracy predictor" in err and "--objectives latency,macs" in err and "Traceback" not in err


# --------------------------------------------------------------------------------- export settings
def test_export_settings_without_images():
    settings = ExportSettings(out=Path("m.onnx"), calib_images=0, eval_images=0)
    assert not settings.needs_data
    assert ExportSettings(out=Path("m.onnx"), calib_images=0).needs_data  # accuracy needs test images
    assert ExportSettings(out=Path("m.onnx")).eval_images == 1000
    for field in ("calib_images", "eval_images"):
        with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} must be an image count >= 0"):
            ExportSettings(out=Path("m.onnx"), **{field: -1})


def test_export_from_an_image_folder_decodes_only_the_images_it_uses(tmp_path, monkeypatch):
    """An ImageNet-like folder (mixed image sizes, many files) stays on disk: export decodes the channel-
    statistics sample, the calibration, evaluation and parity images, resized to the space's largest
    resolution, and nothing else."""
    from PIL import Image

    from export_fixtures import random_checkpoint
    from hwnas import data
    from hwnas.arch import sample_architecture
    from hwnas.export.pipeline import export_architecture

    for c in range(10):  # fmnist-mbv3 has 10 classes
        for i in range(12):
            path = tmp_path / "folder" / f"class{c}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (20 + i, 24), 10 * c + i).save(path)
    ckpt = random_checkpoint(tmp_path)
    (tmp_path / "arch.json").write_text(json.dumps(sample_architecture("fmnist-mbv3", 3).to_dict()))
    decoded: list[tuple[int, tuple[int, int]]] = []
    real = data._load_images
    monkeypatch.setattr(data, "_load_images",
                        lambda files, c, size, *a, **k: decoded.append((len(files), size)) or real(files, c, size, *a, **k))
    monkeypatch.setattr(data, "STATS_SAMPLE", 10)
    settings = ExportSettings(out=tmp_path / "m.onnx", supernet=str(ckpt), data=str(tmp_path / "folder"),
                              calib_images=6, eval_images=4, parity_images=3, progress=False)
    result = export_architecture(tmp_path / "arch.json", settings)
    assert result.status == "ok" and round(result.fp32.accuracy * 4, 9) % 1 == 0  # k correct of 4 images
    assert sorted(n for n, _ in decoded) == [3, 4, 6, 10]  # parity, evaluation, calibration, statistics
    largest = max(get_space("fmnist-mbv3").resolutions)
    assert {size for _, size in decoded} == {(largest, largest)}  # mixed sizes -> the space's largest resolution


def test_export_caps_accuracy_images_and_can_keep_bn_statistics(tmp_path, capsys):
    from export_fixtures import random_checkpoint
    from hwnas.arch import sample_architecture
    from hwnas.export.onnx_export import read_metadata
    from hwnas.export.pipeline import export_architecture

    ckpt = random_checkpoint(tmp_path)  # its IDX data set has 20 test images
    (tmp_path / "arch.json").write_text(json.dumps(sample_architecture("fmnist-mbv3", 3).to_dict()))

    def export(name: str, **options) -> object:
        settings = ExportSettings(out=tmp_path / f"{name}.onnx", supernet=str(ckpt), parity_images=4,
                                  progress=False, **options)
        return export_architecture(tmp_path / "arch.json", settings)

    capped = export("capped", calib_images=8, eval_images=5)
    assert capped.status == "ok" and round(capped.fp32.accuracy * 5, 9) % 1 == 0  # k correct of 5 images
    assert "keeping the supernet's own BN statistics" not in capsys.readouterr().err

    kept = export("kept", calib_images=0, eval_images=0)
    assert "keeping the supernet's own BN statistics" in capsys.readouterr().err
    assert kept.status == "ok" and kept.fp32.accuracy is None and kept.parity["inputs"] == "random inputs"
    kept_meta = read_metadata(tmp_path / "kept.onnx")
    assert kept_meta["bn_calibration_images"] == 0
    assert "normalization" not in kept_meta  # no data read: the 1-channel model's statistics are unknown
    assert read_metadata(tmp_path / "capped.onnx")["bn_calibration_images"] == 8
