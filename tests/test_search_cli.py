"""``hwnas search`` and ``hwnas predict`` end to end, in-process, on synthetic stand-ins.

The accuracy predictor and latency tables are replaced by small analytic objects with the same
methods (``predict(genes)``, ``predict_genes(genes)``, ``resolutions``), loaded from tiny JSON files
written to ``tmp_path``, so the tests exercise the CLI, the run folder and the problem wiring
without trained artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.complexity import ComplexityCounter
from hwnas.encoding import GeneLayout
from hwnas.search import runner
from hwnas.search.evaluated import read_evaluated
from hwnas import paths
from search_fakes import FakePredictor, FakeTable, fake_search_env

SPACE = "fmnist-mbv3"
LAYOUT = GeneLayout(SPACE)


@pytest.fixture
def env(tmp_path, monkeypatch):
    return fake_search_env(tmp_path, monkeypatch)


def search_args(env, out: str, *extra: str, devices=("a",), budgets=("2.0",)) -> list[str]:
    args = ["search", "--space", SPACE, "--predictor", env["predictor"], "--evaluations", "600",
            "--population", "64", "--seed", "3", "--out", str(env["tmp"] / out), "--no-progress", "--no-plot"]
    for d in devices:
        args += ["--device", env[d]]
    return args + ["--budget-ms", *budgets, *extra]


def smallest_latency(env, key="a") -> float:
    table = FakeTable(SPACE, *(json.loads(Path(env[key]).read_text())[k] for k in ("scale", "offset")))
    return float(table.predict_genes(runner.SearchProblem(
        LAYOUT, [runner.Objective("x", lambda g: np.zeros(len(g)))]).smallest_genes()).min())


# --------------------------------------------------------------------------------- search
def test_run_folder_contents_and_front_shape(env):
    out = env["tmp"] / "run1"
    args = search_args(env, "run1")
    args.remove("--no-plot")
    assert main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert {"front.json", "front.csv", "picks.json", "evaluated.npz", "config.json", "pareto.png",
            "log.txt"} <= names
    front = json.loads((out / "front.json").read_text())
    assert len(front) >= 3
    counter = ComplexityCounter(SPACE)
    for rec in front:
        assert set(rec) == {"format", "arch", "precision", "predicted", "macs", "params"} and rec["format"] == 3
        assert rec["precision"] == "fp32"
        assert set(rec["arch"]) == {"kernel", "expand", "depth", "resolution"}
        assert set(rec["predicted"]) == {"accuracy", "latency_ms"}
        assert set(rec["predicted"]["latency_ms"]) == {"dev-a"}
        assert rec["predicted"]["latency_ms"]["dev-a"] <= 2.0          # budget respected
        assert 0 < rec["predicted"]["accuracy"] < 1
        assert isinstance(rec["macs"], int) and isinstance(rec["params"], int)
        genes = LAYOUT.encode(runner.Architecture.from_dict(rec["arch"], SPACE))
        assert rec["macs"] == int(counter.macs(genes)[0]) and rec["params"] == int(counter.params(genes)[0])
    # a Pareto front: sorted by accuracy descending, latency strictly decreasing along it
    acc = [r["predicted"]["accuracy"] for r in front]
    lat = [r["predicted"]["latency_ms"]["dev-a"] for r in front]
    assert acc == sorted(acc, reverse=True)
    assert all(l1 > l2 for l1, l2 in zip(lat, lat[1:]))

    config = json.loads((out / "config.json").read_text())
    for key in ("supernet", "predictor", "space", "devices", "latency_tables", "budget_ms", "objectives",
                "evaluations", "seed", "hwnas_version"):
        assert key in config
    assert config["devices"] == ["dev-a"] and config["budget_ms"] == {"dev-a": 2.0}
    assert config["space"] == SPACE and config["evaluations"] == 600 and config["seed"] == 3

    ev = read_evaluated(out)
    assert len(ev) == 600 and list(ev.latency_ms) == ["dev-a"]
    assert int(ev.on_front.sum()) == len(front)
    np.testing.assert_array_equal(ev.feasible, ev.latency_ms["dev-a"] <= 2.0)
    on_front = np.flatnonzero(ev.on_front)
    assert sorted(ev.macs[on_front].tolist()) == sorted(r["macs"] for r in front)
    decoded = sorted(json.dumps([ev.kernel[i].tolist(), ev.expand[i].tolist(), ev.depth[i].tolist(),
                                 int(ev.resolution[i])]) for i in on_front)
    assert decoded == sorted(json.dumps([r["arch"][k] for k in ("kernel", "expand", "depth", "resolution")])
                             for r in front)

    picks = json.loads((out / "picks.json").read_text())
    assert len(picks) == 1 and picks[0]["device"] == "dev-a" and picks[0]["budget_ms"] == 2.0
    assert picks[0]["predicted"]["accuracy"] == pytest.approx(max(acc))
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto front" in (out / "log.txt").read_text()


def test_same_seed_same_front(env):
    assert main(search_args(env, "r1")) == 0
    assert main(search_args(env, "r2")) == 0
    assert main(search_args(env, "r3", "--seed", "4")) == 0
    f1, f2, f3 = ((env["tmp"] / r / "front.json").read_text() for r in ("r1", "r2", "r3"))
    assert f1 == f2
    assert f1 != f3
    assert (env["tmp"] / "r1" / "evaluated.npz").read_bytes() == (env["tmp"] / "r2" / "evaluated.npz").read_bytes()


def test_out_refused_without_overwrite(env, capsys):
    assert main(search_args(env, "run")) == 0
    before = (env["tmp"] / "run" / "front.json").read_text()
    capsys.readouterr()
    assert main(search_args(env, "run", "--seed", "9")) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err
    assert (env["tmp"] / "run" / "front.json").read_text() == before
    assert main(search_args(env, "run", "--seed", "9", "--overwrite")) == 0
    assert (env["tmp"] / "run" / "front.json").read_text() != before
    assert (env["tmp"] / "run" / "log.txt").read_text().count("Pareto front") == 1  # fresh log


def test_infeasible_budget_exit_2(env, capsys):
    floor = smallest_latency(env)
    assert main(search_args(env, "bad", budgets=(f"{floor * 0.5:.4f}",))) == 2
    err = capsys.readouterr().err
    assert "infeasible" in err and "dev-a" in err and "--budget-ms" in err
    assert f"{floor:.2f}" in err  # the smallest reachable latency
    assert not (env["tmp"] / "bad").exists()  # nothing written for a rejected run


def test_missing_table_tells_to_profile(env, capsys):
    (env["tmp"] / "devices").mkdir()
    (env["tmp"] / "devices" / "mydev.yaml").write_text("name: mydev\nbackend: onnxruntime\n")
    args = search_args(env, "x", devices=())
    assert main(args[:-2] + ["--device", "mydev", "--budget-ms", "2"]) == 2
    err = capsys.readouterr().err
    assert "hwnas profile" in err and "mydev" in err


def test_two_devices_two_columns_and_picks(env):
    out = env["tmp"] / "two"
    assert main(search_args(env, "two", devices=("a", "b"), budgets=("1.0", "0.8"))) == 0
    front = json.loads((out / "front.json").read_text())
    for rec in front:
        lat = rec["predicted"]["latency_ms"]
        assert set(lat) == {"dev-a", "dev-b"}
        assert lat["dev-a"] <= 1.0 or lat["dev-b"] <= 0.8  # serves at least one device
    picks = {p["device"]: p for p in json.loads((out / "picks.json").read_text())}
    assert set(picks) == {"dev-a", "dev-b"}
    assert picks["dev-a"]["predicted"]["latency_ms"]["dev-a"] <= 1.0
    assert picks["dev-b"]["predicted"]["latency_ms"]["dev-b"] <= 0.8
    assert picks["dev-a"]["arch"] != picks["dev-b"]["arch"]  # different budgets, different networks
    header = (out / "front.csv").read_text().splitlines()[0]
    assert "latency_ms[dev-a]" in header and "latency_ms[dev-b]" in header
    config = json.loads((out / "config.json").read_text())
    assert config["budget_ms"] == {"dev-a": 1.0, "dev-b": 0.8}
    # each device's latency is looked up once per generation, although it is objective and constraint:
    # initial population + generations and 2 feasibility probes; the report reuses the engine's values
    batches = config["run"]["generations"] + 1
    for table in env["tables"].values():
        assert table.calls == batches + 2

    # --budget-mode all: every front member meets both budgets
    assert main(search_args(env, "all", "--budget-mode", "all", devices=("a", "b"), budgets=("1.0", "0.8"))) == 0
    for rec in json.loads((env["tmp"] / "all" / "front.json").read_text()):
        assert rec["predicted"]["latency_ms"]["dev-a"] <= 1.0 and rec["predicted"]["latency_ms"]["dev-b"] <= 0.8


def test_batch_cache_one_lookup_per_batch(env):
    table = FakeTable(SPACE, 1.0, 0.05)
    scorers = runner.Scorers.build(runner.get_space(SPACE), FakePredictor(SPACE),
                                   [runner.LatencySource("d", Path("t.json"), table)])
    problem = runner.build_problem(scorers, ["accuracy", "latency"], {"d": [2.0]})
    table.calls = 0
    genes = LAYOUT.canonicalize(LAYOUT.random(100, 0))
    F, G, v = problem.evaluate_full(genes)
    assert table.calls == 1
    np.testing.assert_allclose(F[:, 1], G[:, 0])


def test_restricted_resolutions(env):
    env["make_table"]("dev-c", 1.0, 0.05, [24, 28])
    args = search_args(env, "res", devices=()) + []
    args = args[:-2] + ["--device", str(env["tmp"] / "latency_tables" / "dev-c" / f"{SPACE}.json"),
                        "--budget-ms", "3"]
    assert main(args) == 0  # FakeTable asserts no unprofiled resolution is ever scored
    front = json.loads((env["tmp"] / "res" / "front.json").read_text())
    assert {r["arch"]["resolution"] for r in front} <= {24, 28}
    assert json.loads((env["tmp"] / "res" / "config.json").read_text())["resolutions"] == [24, 28]


def test_caps_and_extra_objectives(env):
    out = env["tmp"] / "caps"
    assert main(search_args(env, "caps", "--params-cap", "0.5", "--objectives", "accuracy,latency,macs")) == 0
    assert main(search_args(env, "caps-old", "--flops-cap", "5", "--objectives", "accuracy,latency,flops")) == 0
    front = json.loads((out / "front.json").read_text())
    assert front and all(r["params"] <= 0.5e6 for r in front)
    assert main(search_args(env, "caps2", "--params-cap", "0.001")) == 2


# --------------------------------------------------------------------------------- predict
def _arch_file(tmp: Path, data) -> Path:
    path = tmp / "arch.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_predict_json(env, capsys):
    genes = LAYOUT.canonicalize(LAYOUT.random(1, 7))
    arch = LAYOUT.decode(genes)[0]
    path = _arch_file(env["tmp"], arch.to_ofa_dict())  # OFA form is accepted too
    assert main(["predict", "--arch", str(path), "--space", SPACE, "--predictor", env["predictor"],
                 "--device", env["a"], "--device", env["b"], "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert set(rec) == {"format", "arch", "precision", "predicted", "macs", "params"} and rec["precision"] == "fp32"
    assert rec["arch"] == arch.to_dict()
    assert rec["predicted"]["accuracy"] == pytest.approx(float(FakePredictor(SPACE).predict(genes)[0]))
    assert rec["predicted"]["latency_ms"]["dev-b"] == pytest.approx(
        float(FakeTable(SPACE, 0.4, 0.3).predict_genes(genes)[0]))
    assert rec["macs"] == int(ComplexityCounter(SPACE).macs(genes)[0])
    # without --device, every table for the space is found; the text form names each device
    assert main(["predict", "--arch", str(path), "--space", SPACE, "--predictor", env["predictor"]]) == 0
    text = capsys.readouterr().out
    assert "dev-a" in text and "dev-b" in text and "MACs" in text
    # a record of a front.json list, chosen by --index
    front = env["tmp"] / "front.json"
    front.write_text(json.dumps([{"arch": LAYOUT.decode(LAYOUT.random(1, 1))[0].to_dict()}, rec]))
    assert main(["predict", "--arch", str(front), "--index", "1", "--space", SPACE, "--predictor", env["predictor"],
                 "--device", env["a"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == arch.to_dict()


def test_predict_reads_a_runs_front_in_the_runs_space_not_the_default(env, capsys, monkeypatch):
    """The default space is fmnist-resvgg; a fmnist-mbv3 search's front.json must still be read as fmnist-mbv3."""
    assert main(search_args(env, "mbv3-run")) == 0
    front = env["tmp"] / "mbv3-run" / "front.json"
    assert json.loads((front.parent / "config.json").read_text())["space"] == SPACE != paths.DEFAULT_SPACE
    assert main(["predict", "--arch", str(front), "--index", "0", "--predictor", env["predictor"], "--device",
                 env["a"]]) == 0
    assert f"space       {SPACE}" in capsys.readouterr().out
    alone = _arch_file(env["tmp"], json.loads(front.read_text())[0]["arch"])  # no run folder: the default space
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # where the default checkpoint ships
    assert main(["predict", "--arch", str(alone), "--device", env["a"]]) == 2
    assert "read in the default space fmnist-resvgg; pass --space or --supernet" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ([{"arch": {}}, {"arch": {}}], "choose one with --index"),
    ({"kernel": [3], "expand": [3], "depth": [2], "resolution": 28}, "kernel list has 1 entries"),
    ({"foo": 1}, "needs keys"),
])
def test_predict_bad_arch_file(env, capsys, content, message):
    path = _arch_file(env["tmp"], content)
    assert main(["predict", "--arch", str(path), "--space", SPACE, "--predictor", env["predictor"],
                 "--device", env["a"]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_predict_missing_arch_file(env, capsys):
    assert main(["predict", "--arch", "nope.json", "--space", SPACE, "--predictor", env["predictor"]]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_help_has_examples(capsys):
    for cmd in ("search", "predict"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "Examples:" in capsys.readouterr().out


# --------------------------------------------------------------------------------- real artifacts
def test_search_with_real_predictor_and_table_classes(tmp_path, monkeypatch):
    """The unpatched wiring: an XGBoost AccuracyPredictor and a LatencyTable saved to disk and
    loaded by path. Table entries are fabricated from MACs (a fixture, not a measurement) and
    profiled at two resolutions only, so the search must stay at those."""
    from hwnas.accuracy.predictor import AccuracyPredictor
    from hwnas.latency.table import LatencyTable, enumerate_entries

    monkeypatch.chdir(tmp_path)
    space = runner.get_space(SPACE)
    entries = {}
    for e in enumerate_entries(space, [24, 28]):
        c, h, w = e.input_shape
        entries[e.key] = {"median_ms": 0.01 + 1e-6 * c * h * w * (e.block.mid_channels if e.block else 8)}
    table = LatencyTable(space, entries, meta={"device": {"name": "fixture-dev"}}, resolutions=[24, 28])
    table_file = tmp_path / "tables" / "fixture.json"
    table.save(table_file)

    genes = LAYOUT.canonicalize(LAYOUT.random(200, 0))
    acc = FakePredictor(SPACE).predict(genes)
    pred = AccuracyPredictor(SPACE, n_trials=0, params={"max_depth": 4, "learning_rate": 0.2,
                                                         "num_boost_round": 30}, n_jobs=1).fit(genes, acc)
    pred_file = pred.save(tmp_path / "acc.json")

    probe = LAYOUT.random(500, 1)
    probe[:, LAYOUT.resolution_gene] = np.random.default_rng(1).integers(1, 3, 500)  # 24 or 28 px
    median = float(np.median(table.predict_genes(LAYOUT.canonicalize(probe))))
    out = tmp_path / "real"
    assert main(["search", "--space", SPACE, "--predictor", str(pred_file), "--device", str(table_file),
                 "--budget-ms", f"{median:.4f}", "--evaluations", "512", "--population", "64",
                 "--out", str(out), "--no-progress", "--no-plot"]) == 0
    front = json.loads((out / "front.json").read_text())
    assert front and {r["arch"]["resolution"] for r in front} <= {24, 28}
    rec = front[0]
    arch = runner.Architecture.from_dict(rec["arch"], SPACE)
    assert rec["predicted"]["latency_ms"]["fixture-dev"] == pytest.approx(table.predict(arch))
    assert rec["predicted"]["accuracy"] == pytest.approx(float(pred.predict(LAYOUT.encode(arch))[0]))
    assert json.loads((out / "config.json").read_text())["devices"] == ["fixture-dev"]


@pytest.mark.parametrize("objectives", ["accuracy,latency", "accuracy,latency,macs,params", "accuracy,params"])
def test_scores_reused_from_the_engine_equal_fresh_scoring(env, objectives):
    settings = runner.SearchSettings(predictor=env["predictor"], devices=[env["a"], env["b"]], budgets_ms=[2.0],
                                     space=SPACE, objectives=objectives, evaluations=300, seed=2)
    outcome = runner.run_search(settings)
    genes, scorers = outcome.result.genes, outcome.scorers
    ev = outcome.evaluated
    np.testing.assert_array_equal(ev.accuracy, scorers.accuracy.fn(genes))
    for device, fn in scorers.latency.items():
        np.testing.assert_array_equal(ev.latency_ms[device], fn.fn(genes))
    np.testing.assert_array_equal(ev.macs, scorers.macs.fn(genes))
    np.testing.assert_array_equal(ev.params, scorers.params.fn(genes))


def _picks_by_sorting(ev, budgets, layout):
    """The picks as first written: every feasible candidate under the budget sorted by (rank, latency)."""
    rank = -ev.macs.astype(np.float64) if np.isnan(ev.accuracy).all() else -ev.accuracy
    out = []
    for device, device_budgets in budgets.items():
        lat = ev.latency_ms[device]
        for b in device_budgets:
            ok = np.flatnonzero(ev.feasible & (lat <= b))
            out.append(int(ok[np.lexsort((lat[ok], rank[ok]))[0]]) if len(ok) else None)
    return out


@pytest.mark.parametrize("accuracy", ["scored", "unscored"])
def test_picks_are_the_best_under_each_budget_ties_to_lower_latency_then_first(accuracy):
    """Many equal accuracies and latencies (coarse values): the pick is what sorting all feasible
    candidates by (accuracy, latency) and taking the first gives, without the sort."""
    from hwnas.search.evaluated import Evaluated

    rng = np.random.default_rng(0)
    n = 5000
    genes = LAYOUT.canonicalize(LAYOUT.random(n, rng))
    acc = np.round(rng.uniform(0.5, 0.9, n), 2) if accuracy == "scored" else np.full(n, np.nan)
    lat = np.round(rng.uniform(0.1, 3.0, n), 1)
    ev = Evaluated(accuracy=acc, latency_ms={"d": lat}, macs=rng.integers(1, 50, n) * 1000,
                   params=rng.integers(1, 9, n), violation=np.zeros(n), feasible=rng.random(n) < 0.7,
                   on_front=np.zeros(n, dtype=bool), genes=genes)
    budgets = {"d": [0.05, 0.3, 1.0, 2.5]}
    picks = runner.compute_picks(ev, budgets, LAYOUT)
    assert [p.eval_index for p in picks] == _picks_by_sorting(ev, budgets, LAYOUT)
    assert picks[0].record is None and all(p.record is not None for p in picks[1:])
    assert [p.record for p in picks[1:]] == ev.records([p.eval_index for p in picks[1:]], LAYOUT)
    assert ev.records([3, 1], LAYOUT) == [ev.record(3, LAYOUT), ev.record(1, LAYOUT)]


def test_evaluated_file_is_written_as_the_in_memory_npz(env):
    """Streaming ``evaluated.npz`` into its file gives the bytes the in-memory zip gives."""
    import io

    from hwnas.search.evaluated import EVALUATED_FILE, evaluated_columns, write_evaluated, write_npz

    outcome = runner.run_search(runner.SearchSettings(predictor=env["predictor"], devices=[env["a"], env["b"]],
                                                      budgets_ms=[2.0], space=SPACE, evaluations=300, seed=2))
    path = write_evaluated(env["tmp"] / EVALUATED_FILE, outcome.evaluated, outcome.layout)
    buf = io.BytesIO()
    write_npz(buf, evaluated_columns(outcome.evaluated, outcome.layout))
    assert path.read_bytes() == buf.getvalue()
    back = read_evaluated(env["tmp"])
    np.testing.assert_array_equal(back.latency_ms["dev-b"], outcome.evaluated.latency_ms["dev-b"])


def test_evaluated_csv_of_older_runs_still_reads(tmp_path):
    import gzip

    header = "eval_index,accuracy,latency_ms[dev-a],flops,params,violation,feasible,on_front,kernel,expand,depth,resolution"
    rows = ["0,0.800000,1.500000,1000,20,0,1,1,3-5-7,3-4-6,2-3,28", "1,0.700000,2.500000,900,10,0.25,0,0,3-3-3,3-3-3,2-2,24"]
    (tmp_path / "evaluated.csv.gz").write_bytes(gzip.compress("\n".join([header, *rows, ""]).encode()))
    ev = read_evaluated(tmp_path)
    assert len(ev) == 2 and ev.macs.tolist() == [1000, 900] and ev.latency_ms["dev-a"].tolist() == [1.5, 2.5]
    assert ev.feasible.tolist() == [True, False] and ev.kernel[0].tolist() == [3, 5, 7]
    assert ev.resolution.tolist() == [28, 24]
    (tmp_path / "evaluated.csv.gz").unlink()
    with pytest.raises(runner.ConfigError, match="evaluated.npz"):
        read_evaluated(tmp_path)


def test_validation_summary_uses_the_shared_agreement_keys():
    from hwnas.metrics import prediction_agreement

    models = [{"front_index": i, "predicted": {"accuracy": a, "latency_ms": {"d": p}},
               "true": {"accuracy": a - 0.01, "latency_ms": {"d": m}}}
              for i, (a, p, m) in enumerate([(0.9, 1.0, 1.1), (0.8, 0.8, 0.78), (0.7, 0.5, 0.52)])]
    summary = runner.validation_summary(models)
    assert summary["latency_ms[d]"] == prediction_agreement([1.0, 0.8, 0.5], [1.1, 0.78, 0.52])
    assert summary["latency_ms[d]"]["within10_pct"] == 100 and summary["accuracy"]["kendall_tau"] == 1.0
    text = runner.format_validation({"models": models, "summary": summary})
    assert "latency_ms[d]: MAPE" in text and "within +-10%" in text


# --------------------------------------------------------------------------------- INT8 (issue 21)
@pytest.fixture
def int8_env(env):
    """cpu-1thread with an FP32 and a faster INT8 table; an INT8 predictor file at the default path."""
    env["make_table"]("cpu-1thread", 1.0, 0.05)
    env["make_table"]("cpu-1thread", 0.55, 0.05, precision="int8")
    int8 = env["tmp"] / "predictors" / SPACE / "int8" / "accuracy_xgb.json"
    int8.parent.mkdir(parents=True)
    int8.write_text(json.dumps({"precision": "int8"}))
    return env


def _precision_args(env, out: str, precision: str, *extra: str) -> list[str]:
    return ["search", "--space", SPACE, "--device", "cpu-1thread", "--budget-ms", "0.6", "1.2", "2.4",
            "--evaluations", "600", "--seed", "3", "--precision", precision, "--out", str(env["tmp"] / out),
            "--no-progress", "--no-plot", *extra]


def test_int8_search_scores_with_the_int8_table_and_predictor(int8_env):
    env = int8_env
    assert main(_precision_args(env, "q", "int8", "--predictor", str(env["tmp"] / "predictors" / SPACE / "int8" /
                                                                    "accuracy_xgb.json"))) == 0
    front = json.loads((env["tmp"] / "q" / "front.json").read_text())
    assert front and all(r["precision"] == "int8" and r["format"] == 3 for r in front)
    genes = LAYOUT.encode([runner.Architecture.from_dict(r["arch"], SPACE) for r in front])
    int8_table = FakeTable(SPACE, 0.55, 0.05)
    np.testing.assert_allclose([r["predicted"]["latency_ms"]["cpu-1thread"] for r in front],
                               int8_table.predict_genes(genes), rtol=1e-9)
    np.testing.assert_allclose([r["predicted"]["accuracy"] for r in front],
                               FakePredictor(SPACE, {"precision": "int8"}).predict(genes), rtol=1e-9)
    config = json.loads((env["tmp"] / "q" / "config.json").read_text())
    assert config["precision"] == "int8" and config["latency_tables"]["cpu-1thread"].endswith(f"{SPACE}.int8.json")


def test_int8_search_refuses_fp32_predictor_or_missing_int8_table(int8_env, capsys):
    env = int8_env
    assert main(_precision_args(env, "bad", "int8", "--predictor", env["predictor"])) != 0
    assert "is for FP32 models but this search is --precision int8" in capsys.readouterr().err
    (env["tmp"] / "latency_tables" / "cpu-1thread" / f"{SPACE}.int8.json").unlink()
    assert main(_precision_args(env, "bad2", "int8")) != 0
    assert "--precision int8` first" in capsys.readouterr().err
    assert not (env["tmp"] / "bad").exists() and not (env["tmp"] / "bad2").exists()


def test_both_precisions_keep_the_best_model_per_budget(int8_env):
    from hwnas.search.front import read_front, read_picks

    env = int8_env
    assert main(_precision_args(env, "both", "fp32,int8", "--predictor", env["predictor"])) == 0
    out = env["tmp"] / "both"
    runs = {p: (read_front(out / p / "front.json"), read_picks(out / p / "picks.json")) for p in ("fp32", "int8")}
    front, picks = read_front(out / "front.json"), read_picks(out / "picks.json")
    union = runs["fp32"][0] + runs["int8"][0]
    assert all(any(r == u for u in union) for r in front)  # merged from the precisions' fronts

    def dominates(a, b):
        pa, pb = (a.accuracy, -a.latency_ms["cpu-1thread"]), (b.accuracy, -b.latency_ms["cpu-1thread"])
        return all(x >= y for x, y in zip(pa, pb)) and pa != pb

    assert not any(dominates(u, r) for r in front for u in union)  # nothing in either run beats a kept one
    assert len({r.precision for r in front}) == 2  # the faster INT8 table wins somewhere, FP32's accuracy elsewhere
    for i, pick in enumerate(picks):
        best = max(runs[p][1][i].record.accuracy for p in runs)
        assert pick.record.accuracy == best and pick.budget_ms == runs["fp32"][1][i].budget_ms
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == "fp32,int8" and set(config["precisions"]) == {"fp32", "int8"}
    assert "precision" in (out / "front.csv").read_text().splitlines()[0]
