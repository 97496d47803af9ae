"""The ProxylessNAS preset beyond parity: per-stage depth choices in genes, features, MACs, latency
tables and search; ONNX export; profiling a ProxylessNAS-shaped space end to end; the listing.

Parity with once-for-all is tests/test_ofa_proxyless_parity.py. Profiling times a tiny space of the
same shape (ReLU6, no SE, one-block last stage, head without feature mix), so it runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.arch import Architecture, largest_architecture, sample_architecture, smallest_architecture
from hwnas.cli import main as cli_main
from hwnas.complexity import ComplexityCounter
from hwnas.encoding import GeneLayout
from hwnas.errors import ArchitectureError
from hwnas.export.onnx_export import check_parity, export_subnet
from hwnas.latency.profiler import Profiler, ProfileOptions
from hwnas.latency.table import OVERHEAD_KEY, LatencyTable, arch_keys, enumerate_entries
from hwnas.search import NSGA2, NSGA2Config, Objective, SearchProblem
from hwnas.space import SearchSpace, get_space
from hwnas.supernet.network import build_supernet

from latency_measurers import CountingMeasurer, cpu_test_profile  # noqa: E402 (tests/ is on sys.path)
from test_ofa_parity import randomize  # noqa: E402
from tiny_spaces import TINY_PROXYLESS_ENTRIES, tiny_proxyless_space  # noqa: E402

torch.set_num_threads(1)

SPACE = get_space("ofa-proxyless-w1.3")
LAYOUT = GeneLayout(SPACE)


def test_last_stage_is_one_block_and_its_slots_never_run():
    assert SPACE.stage_depths(5) == (1,) and SPACE.stage_depths(0) == (2, 3, 4)
    assert LAYOUT.cardinalities[LAYOUT.depth_genes].tolist() == [3, 3, 3, 3, 3, 1]
    genes = LAYOUT.random(500, 0)
    active = LAYOUT.active(LAYOUT.check(genes))
    assert active[:, 20].all() and not active[:, 21:].any()  # stage 5: slot 20 only
    for arch in LAYOUT.decode(genes[:50]):
        assert arch.validate(SPACE).depth[5] == 1
        assert len(list(arch.active_blocks())) == sum(arch.depth)
    assert largest_architecture(SPACE).depth == (4, 4, 4, 4, 4, 1)
    assert smallest_architecture(SPACE).depth == (2, 2, 2, 2, 2, 1)
    bad = largest_architecture(SPACE)
    with pytest.raises(ArchitectureError, match=r"depth\[5\] = 4 is not allowed; choose from \(1,\)"):
        Architecture(bad.kernel, bad.expand, (4,) * 6, bad.resolution).validate(SPACE)


def test_genes_round_trip_and_canonical_forms_agree():
    rng = np.random.default_rng(1)
    archs = [sample_architecture(SPACE, rng) for _ in range(40)]
    genes = LAYOUT.encode(archs)
    assert LAYOUT.decode(genes) == archs
    canonical = LAYOUT.decode(LAYOUT.canonicalize(genes))
    assert canonical == [a.canonical(SPACE) for a in archs]


def test_new_field_defaults_stay_out_of_existing_definitions():
    """Existing presets' dicts (and so fingerprints in shipped tables and predictors) do not change."""
    for name in ("fmnist-mbv3", "ofa-mbv3-w1.0", "ofa-mbv3-w1.2"):
        data = get_space(name).to_dict()
        assert "family" not in data and "head_act" not in data
        assert all("depths" not in st for st in data["stages"])
    data = SPACE.to_dict()
    assert data["head_act"] == "relu6" and data["stages"][5]["depths"] == [1]
    assert SearchSpace.from_dict(data) == SPACE and SearchSpace.from_dict(data).fingerprint() == SPACE.fingerprint()


def test_counter_and_latency_table_agree_with_the_plan():
    counter = ComplexityCounter(SPACE)
    entries = enumerate_entries(SPACE, [128])
    assert not any(":in416:out416:" in e.key for e in entries)  # no entry for the never-active slots
    rng = np.random.default_rng(2)
    table_entries = {e.key: {"median_ms": float(rng.uniform(0.05, 1.0))} for e in entries}
    table_entries[OVERHEAD_KEY]["median_ms"] = 0.0
    table = LatencyTable(SPACE, table_entries, resolutions=[128])
    archs = [sample_architecture(SPACE, rng, resolution=128) for _ in range(30)]
    genes = LAYOUT.encode(archs)
    plain = table.predict_genes(genes, calibrated=False)
    for arch, ms in zip(archs, plain):
        assert ms == pytest.approx(sum(table_entries[k]["median_ms"] for k in arch_keys(SPACE, arch)), rel=1e-9)
    fastest = table.fastest_genes()
    assert LAYOUT.decode(fastest)[0].depth[5] == 1
    assert table.predict_genes(fastest)[0] <= table.predict_genes(genes).min()
    assert (counter.macs(genes) > 0).all()


def test_macs_search_runs_on_the_space():
    counter = ComplexityCounter(SPACE)
    problem = SearchProblem(LAYOUT, [Objective("macs", counter.macs, "min"),
                                     Objective("params", counter.params, "max")])
    result = NSGA2(problem, NSGA2Config(pop_size=16, n_evaluations=64, seed=0)).run()
    for arch in LAYOUT.decode(result.genes):
        arch.validate(SPACE)
    assert len(result.front) > 1


def test_subnet_exports_to_onnx_within_parity(tmp_path):
    torch.manual_seed(0)
    net = randomize(build_supernet(SPACE), seed=4)
    arch = sample_architecture(SPACE, 3, resolution=128)
    subnet = net.extract(arch).eval()
    path = export_subnet(subnet, arch, tmp_path / "proxyless.onnx")
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    max_abs, max_rel = check_parity(path, subnet, x)
    assert max_rel <= 1e-4


def test_profile_a_proxyless_shaped_space_end_to_end(tmp_path):
    space = tiny_proxyless_space()
    assert len(enumerate_entries(space)) == TINY_PROXYLESS_ENTRIES
    measurer = CountingMeasurer()
    options = ProfileOptions(calibrate=4, validate=2, seed=3, rounds=1)
    result = Profiler(space, cpu_test_profile(), tmp_path, options, measurer=measurer, progress=False).run()
    assert result.report["entries"] == TINY_PROXYLESS_ENTRIES
    table = LatencyTable.load(result.table_path, space)
    assert np.isfinite(table.predict_genes(GeneLayout(space).random(20, 0))).all()


def test_spaces_command_lists_the_preset(capsys):
    assert cli_main(["spaces"]) == 0
    rows = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()}
    assert rows["ofa-proxyless-w1.3"] == ["mbconv", SPACE.fingerprint()]
    assert rows["ofa-resnet50"][0] == "resnet" and rows["fmnist-mbv3"][0] == "mbconv"


def test_cli_searches_the_space_for_latency_and_macs(tmp_path, monkeypatch):
    """``hwnas search --space ofa-proxyless-w1.3 --objectives latency,macs`` with a table (synthetic
    entries at 128 px: the search, not the numbers, is under test)."""
    import json

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    entries = {e.key: {"median_ms": float(rng.uniform(0.05, 1.0))} for e in enumerate_entries(SPACE, [128])}
    table = LatencyTable(SPACE, entries, meta={"device": {"name": "synthetic"}}, resolutions=[128])
    path = table.save(tmp_path / "proxyless.json")
    out = tmp_path / "run"
    assert cli_main(["search", "--space", SPACE.name, "--device", str(path), "--objectives", "latency,macs",
                     "--budget-ms", "40", "--evaluations", "200", "--population", "16", "--out", str(out),
                     "--no-progress"]) == 0
    front = json.loads((out / "front.json").read_text())
    assert front
    for record in front:
        arch = Architecture.from_dict(record["arch"], SPACE)
        assert arch.depth[5] == 1 and arch.resolution == 128


def test_once_for_all_arch_dicts_with_one_entry_per_block_are_read():
    """OFA's own dicts list 21 blocks (the grid has 24 slots) and any depth for the one-block stage."""
    arch = sample_architecture(SPACE, 11).canonical(SPACE)
    real = range(21)  # the last stage's one block is slot 20; slots 21-23 never run
    ofa = {"ks": [arch.kernel[s] for s in real], "e": [arch.expand[s] for s in real],
           "d": list(arch.depth[:5]) + [4], "r": [arch.resolution]}
    assert Architecture.from_dict(ofa, SPACE) == arch
    assert Architecture.from_dict(arch.to_ofa_dict(), SPACE) == arch  # the per-slot form still reads
    with pytest.raises(ArchitectureError, match="kernel list has 21 entries"):
        Architecture.from_dict(ofa).validate(SPACE)  # without the space the lists cannot be placed
