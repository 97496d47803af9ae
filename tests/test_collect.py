"""Accuracy data collection on a tiny synthetic data set and a freshly initialised supernet."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from hwnas.accuracy.collect import (CollectConfig, arch_key, collect, collection_architectures, merge_shards,
                                    read_accuracy_data, shard)
from hwnas.accuracy.features import ComplexityTables
from hwnas.arch import largest_architecture, smallest_architecture
from hwnas.atomic_io import read_jsonl
from hwnas.data import Dataset, Split
from hwnas.errors import ConfigError, DataError
from hwnas.space import get_space
from hwnas.supernet.checkpoint import save_supernet
from hwnas.supernet.network import ElasticMobileNetV3

SPACE = "fmnist-mbv3"


def _split(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    return Split(images, torch.randint(0, 10, (n,), generator=g))


@pytest.fixture(scope="module")
def tiny_data() -> Dataset:
    torch.set_num_threads(1)
    return Dataset(name="tiny", train=_split(48, 0), val=_split(64, 1), test=_split(8, 2), num_classes=10,
                   in_channels=1, class_names=tuple(str(i) for i in range(10)), mean=(0.5,), std=(0.29,))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("ckpt")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(str(save_supernet(folder / f"supernet{seed}.safetensors", ElasticMobileNetV3(SPACE))))
    return paths[0], paths[1]


def _config(supernet: str, out, n: int, **kw) -> CollectConfig:
    return CollectConfig(supernet=supernet, n=n, out=str(out), val_images=0, calib_images=32, batch_size=64,
                         device="cpu", threads=1, **kw)


def test_collect_writes_records_and_resumes(tiny_data, checkpoints, tmp_path):
    first = collect(_config(checkpoints[0], tmp_path, 3), dataset=tiny_data, progress=False)
    assert first["measured"] == 3 and first["total_records"] == 3
    records = read_jsonl(tmp_path / "dataset.jsonl")
    assert [r["arch"] for r in records[:2]] == [smallest_architecture(SPACE).to_dict(),
                                                largest_architecture(SPACE).to_dict()]
    data = read_accuracy_data(tmp_path / "dataset.jsonl")
    macs, params = ComplexityTables.build(SPACE).macs_params(data.genes)
    for rec, m, p, g in zip(records, macs, params, data.genes):
        assert 0.0 <= rec["accuracy"] <= 1.0 and rec["loss"] > 0 and rec["seconds"] > 0
        assert (rec["macs"], rec["params"]) == (m, p)   # counted on the module == analytic from genes
        assert rec["genes"] == g.tolist()
    meta = json.loads((tmp_path / "dataset.meta.json").read_text())
    assert len(meta["supernet_sha256"]) == 64 and meta["space"] == SPACE
    second = collect(_config(checkpoints[0], tmp_path, 4), dataset=tiny_data, progress=False)
    assert (second["measured"], second["skipped"], second["total_records"]) == (1, 3, 4)
    assert read_jsonl(tmp_path / "dataset.jsonl")[:3] == records  # earlier records untouched


def test_torn_last_line_is_dropped_before_appending(tiny_data, checkpoints, tmp_path):
    collect(_config(checkpoints[0], tmp_path, 2), dataset=tiny_data, progress=False)
    with open(tmp_path / "dataset.jsonl", "a") as fh:
        fh.write('{"arch": {"kernel": [3, 5')  # interrupted append
    summary = collect(_config(checkpoints[0], tmp_path, 3), dataset=tiny_data, progress=False)
    assert summary["measured"] == 1
    lines = (tmp_path / "dataset.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["accuracy"] >= 0 for line in lines)


def test_repeat_calibration_differs_where_its_calibration_images_differ(tiny_data, checkpoints, tmp_path):
    """The repeat (noise-ceiling) measurement recalibrates BN on other images, so it must differ from
    the first; and that difference must come from those images: a collection whose first calibration
    uses them (calib_seed 1) reproduces the repeat exactly."""
    collect(_config(checkpoints[0], tmp_path / "repeat", 2, repeat_calibration=True), dataset=tiny_data,
            progress=False)
    data = read_accuracy_data(tmp_path / "repeat", target="accuracy_2")
    assert len(data.y) == 2
    records = data.records
    assert all(r["loss_2"] != r["loss"] for r in records), [(r["loss"], r["loss_2"]) for r in records]
    collect(_config(checkpoints[0], tmp_path / "seed1", 2, calib_seed=1), dataset=tiny_data, progress=False)
    same_images = read_jsonl(tmp_path / "seed1" / "dataset.jsonl")
    assert [(r["accuracy"], r["loss"]) for r in same_images] == [(r["accuracy_2"], r["loss_2"]) for r in records]


def test_other_checkpoint_or_protocol_is_refused(tiny_data, checkpoints, tmp_path):
    collect(_config(checkpoints[0], tmp_path, 1), dataset=tiny_data, progress=False)
    with pytest.raises(DataError, match="another supernet checkpoint"):
        collect(_config(checkpoints[1], tmp_path, 2), dataset=tiny_data, progress=False)
    with pytest.raises(DataError, match="calib_images"):
        cfg = _config(checkpoints[0], tmp_path, 2)
        cfg.calib_images = 16
        collect(cfg, dataset=tiny_data, progress=False)
    assert len(read_jsonl(tmp_path / "dataset.jsonl")) == 1


def test_architecture_stream_is_stratified_distinct_and_prefix_stable():
    space = get_space(SPACE)
    archs = collection_architectures(space, 42, seed=3)
    assert archs[0] == smallest_architecture(space) and archs[1] == largest_architecture(space)
    counts = Counter(a.resolution for a in archs[2:])
    assert set(counts) == set(space.resolutions) and max(counts.values()) - min(counts.values()) <= 1
    assert len({arch_key(a, space) for a in archs}) == 42
    assert collection_architectures(space, 42, seed=3) == archs
    assert collection_architectures(space, 20, seed=3) == archs[:20]
    assert collection_architectures(space, 20, seed=4) != archs[:20]


def test_shard_and_merge(tmp_path):
    assert shard(list(range(10)), 1, 3) == [1, 4, 7]
    assert sorted(sum((shard(list(range(10)), r, 3) for r in range(3)), [])) == list(range(10))
    with pytest.raises(ConfigError):
        shard([1, 2], 3, 2)
    archs = collection_architectures(SPACE, 4, seed=0)
    rec = [{"arch": a.to_dict(), "accuracy": 0.5 + i / 10} for i, a in enumerate(archs)]
    for r, part in ((0, rec[:2]), (1, rec[1:])):  # rec[1] measured by both ranks
        (tmp_path / f"dataset.rank{r}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in part))
    assert merge_shards(tmp_path, SPACE) == 4
    assert read_jsonl(tmp_path / "dataset.jsonl") == rec
    assert not list(tmp_path.glob("dataset.rank*"))


def test_bad_config_is_refused():
    with pytest.raises(ConfigError):
        CollectConfig(supernet="x", n=0)
    np.testing.assert_equal(len(collection_architectures(SPACE, 1)), 1)


def test_plain_family_collects_and_its_labels_match_the_extracted_subnet(tiny_data, tmp_path):
    """fmnist-cnn has no layers every subnet shares (split_shared gives an empty prefix): its labels are
    the whole extracted subnet's, recalibrated and evaluated, and its genes and costs come from its family."""
    from hwnas import families
    from hwnas.data import calibration_subset
    from hwnas.supernet.calibration import evaluate, recalibrate_bn
    from hwnas.supernet.plain import ElasticPlainCNN

    torch.manual_seed(0)
    net = ElasticPlainCNN("fmnist-cnn")
    path = str(save_supernet(tmp_path / "cnn.safetensors", net))
    summary = collect(_config(path, tmp_path / "out", 3), dataset=tiny_data, progress=False)
    assert summary["measured"] == 3
    records = read_jsonl(tmp_path / "out" / "dataset.jsonl")
    assert [r["arch"] for r in records[:2]] == [families.smallest_architecture("fmnist-cnn").to_dict(),
                                                families.largest_architecture("fmnist-cnn").to_dict()]
    layout = families.gene_layout("fmnist-cnn")
    for rec in records:
        arch = families.architecture_from_dict(rec["arch"], "fmnist-cnn")
        assert rec["genes"] == layout.encode(arch)[0].tolist()
        assert (rec["macs"], rec["params"]) == families.macs_and_params("fmnist-cnn", arch)
    arch = families.architecture_from_dict(records[1]["arch"], "fmnist-cnn")  # the largest, checked by hand
    sub = net.extract(arch)
    calib = calibration_subset(tiny_data.train, 32, seed=0)  # the collection's calibration images
    recalibrate_bn(sub, calib, arch.resolution, tiny_data.mean, tiny_data.std, device="cpu")
    accuracy, loss = evaluate(sub, tiny_data.val, arch.resolution, tiny_data.mean, tiny_data.std, device="cpu")
    assert records[1]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert records[1]["loss"] == pytest.approx(loss, rel=1e-6)  # other calibration images: ~1e-4 apart
    data = read_accuracy_data(tmp_path / "out" / "dataset.jsonl")
    assert data.genes.shape == (3, layout.num_genes)
