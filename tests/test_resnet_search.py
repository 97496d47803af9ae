"""``hwnas search`` over resnet-family genes: MACs/params without a table, latency with one."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.families import complexity_counter, gene_layout
from hwnas.resnet_arch import ResNetArchitecture, resnet_macs_and_params, smallest_resnet_architecture
from hwnas.search import runner
from hwnas.search.evaluated import read_evaluated
from tests.tiny_spaces import tiny_resnet_space

TINY = tiny_resnet_space()


class MacsTable:
    """A stand-in latency table for a resnet space: 1 ms per 100k MACs plus an offset."""

    def __init__(self, space) -> None:
        self.counter = complexity_counter(space)
        self.resolutions = tuple(space.resolutions)

    def predict_genes(self, genes: np.ndarray) -> np.ndarray:
        return 0.1 + self.counter.macs(genes) / 1e5


def layout_smallest() -> ResNetArchitecture:
    return smallest_resnet_architecture(TINY)


def search(tmp_path, space: str, *extra: str) -> list[str]:
    return ["search", "--space", space, "--evaluations", "300", "--population", "16", "--seed", "1",
            "--out", str(tmp_path / "run"), "--no-progress", "--no-plot", *extra]


def test_macs_params_search_needs_no_table_and_writes_resnet_records(tmp_path):
    assert main(search(tmp_path, TINY.name, "--objectives", "macs,params")) == 0
    out = tmp_path / "run"
    front = json.loads((out / "front.json").read_text())
    assert front and json.loads((out / "picks.json").read_text()) == []
    for rec in front:
        arch = ResNetArchitecture.from_dict(rec["arch"], TINY)
        assert set(rec["arch"]) == {"depth", "expand", "width", "resolution"}
        assert (rec["macs"], rec["params"]) == resnet_macs_and_params(TINY, arch)
        assert rec["predicted"] == {"accuracy": None, "latency_ms": {}}
    smallest = resnet_macs_and_params(TINY, layout_smallest())
    assert min(r["macs"] for r in front) == smallest[0]  # the engine found the true minimum
    header = next(csv.reader((out / "front.csv").open()))
    assert header[-4:] == ["depth", "expand", "width", "resolution"]
    ev = read_evaluated(out)
    layout = gene_layout(TINY)
    decoded = layout.decode(layout.encode([ResNetArchitecture.from_dict(r["arch"], TINY) for r in front]))
    front_rows = np.flatnonzero(ev.on_front)
    assert len(ev) == 300 and len(front_rows) == len(front)
    got = {(tuple(ev.depth[i]), tuple(ev.expand[i]), tuple(ev.width[i]), int(ev.resolution[i])) for i in front_rows}
    assert got == {(a.depth, a.expand, a.width, a.resolution) for a in decoded}


def test_latency_search_with_a_table_respects_the_budget(tmp_path, monkeypatch):
    table_path = tmp_path / "latency_tables" / "dev" / f"{TINY.name}.json"
    table_path.parent.mkdir(parents=True)
    table_path.write_text("{}")
    monkeypatch.setattr(runner, "load_latency_table", lambda path, space: MacsTable(space))
    budget = float(np.median(MacsTable(TINY).predict_genes(gene_layout(TINY).random(200, 0))))
    assert main(search(tmp_path, TINY.name, "--objectives", "latency,macs", "--device", str(table_path),
                       "--budget-ms", str(budget))) == 0
    front = json.loads((tmp_path / "run" / "front.json").read_text())
    assert front and all(r["predicted"]["latency_ms"]["dev"] <= budget for r in front)
    pick = json.loads((tmp_path / "run" / "picks.json").read_text())[0]
    assert pick["device"] == "dev" and pick["predicted"]["latency_ms"]["dev"] <= budget
    ev = read_evaluated(tmp_path / "run")  # no predictor: the pick has the most MACs under the budget
    assert pick["macs"] == ev.macs[ev.feasible & (ev.latency_ms["dev"] <= budget)].max()


def test_latency_objective_without_a_device_says_what_to_do(tmp_path, capsys):
    assert main(search(tmp_path, TINY.name, "--objectives", "latency,macs")) == 2
    assert "needs at least one --device" in capsys.readouterr().err
    assert main(search(tmp_path, TINY.name, "--objectives", "macs", "--budget-ms", "3")) == 2
    assert "--budget-ms needs a --device" in capsys.readouterr().err


@pytest.mark.parametrize("objectives", ["macs,params"])
def test_published_resnet50_space_searches(tmp_path, objectives):
    assert main(search(tmp_path, "ofa-resnet50", "--objectives", objectives, "--macs-cap", "3000")) == 0
    front = json.loads((tmp_path / "run" / "front.json").read_text())
    assert front and all(r["macs"] <= 3e9 for r in front)
    assert all(len(r["arch"]["expand"]) == 18 for r in front)
