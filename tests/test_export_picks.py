"""``hwnas export --pick budget`` exports exactly the search's picks, for searches ``hwnas search`` really ran.

Each test runs a real search (stand-in predictor and tables, see search_fakes.py) and a real export
(random supernet, tiny data set, no latency measurement), then compares the exported models with
``picks.json``. Also: front records round-trip, and old run folders load or get a clear message.
"""

from __future__ import annotations

import json

import pytest

from export_fixtures import random_checkpoint
from hwnas.cli import main
from search_fakes import fake_search_env

SPACE = "fmnist-mbv3"


@pytest.fixture
def env(tmp_path, monkeypatch):
    env = fake_search_env(tmp_path, monkeypatch)
    env["supernet"] = str(random_checkpoint(tmp_path))
    return env


def _search(env, out: str, devices: tuple[str, ...], budgets: tuple[str, ...], *extra: str) -> None:
    args = ["search", "--space", SPACE, "--predictor", env["predictor"], "--evaluations", "600", "--seed", "1",
            "--out", str(env["tmp"] / out), "--no-progress", "--no-plot", *extra]
    for d in devices:
        args += ["--device", env[d]]
    assert main(args + ["--budget-ms", *budgets]) == 0


def _export(env, run: str, out: str, *extra: str) -> int:
    return main(["export", str(env["tmp"] / run), "--pick", "budget", "--supernet", env["supernet"], "--out",
                 str(env["tmp"] / out), "--no-measure", "--calib-images", "16", "--parity-images", "4",
                 "--no-progress", *extra])


def _exported_archs(env, out: str) -> list[dict]:
    summary = json.loads((env["tmp"] / out / "summary.json").read_text())
    assert all(m["status"] == "ok" for m in summary["models"])
    return [m["arch"] for m in summary["models"]]


def _picks(env, run: str) -> list[dict]:
    """picks.json as written (plain JSON, so this test also runs against older code)."""
    return json.loads((env["tmp"] / run / "picks.json").read_text())


def _distinct_pick_archs(env, run: str) -> list[dict]:
    archs: list[dict] = []
    for p in _picks(env, run):
        if p["arch"] not in archs:
            archs.append(p["arch"])
    return archs


def test_one_device_three_budgets_exports_every_pick(env):
    _search(env, "multi", ("a",), ("1.0", "1.5", "2.0"))
    picks = _picks(env, "multi")
    assert [p["budget_ms"] for p in picks] == [1.0, 1.5, 2.0] and all(p["arch"] for p in picks)
    expected = _distinct_pick_archs(env, "multi")
    assert len(expected) == 3  # three budgets, three different networks
    assert _export(env, "multi", "exp-multi") == 0
    exported = _exported_archs(env, "exp-multi")
    assert sorted(map(json.dumps, exported)) == sorted(map(json.dumps, expected))
    summary = json.loads((env["tmp"] / "exp-multi" / "summary.json").read_text())
    labels = sorted(label for m in summary["models"] for label in m.get("picked_for", []))
    assert labels == ["dev-a <= 1 ms", "dev-a <= 1.5 ms", "dev-a <= 2 ms"]


def test_two_devices_any_mode_exports_each_devices_pick(env):
    _search(env, "two", ("a", "b"), ("1.2", "0.9"))
    picks = _picks(env, "two")
    assert [(p["device"], p["budget_ms"]) for p in picks] == [("dev-a", 1.2), ("dev-b", 0.9)]
    for p in picks:  # each device's pick meets that device's budget, not necessarily the other's
        assert p["predicted"]["latency_ms"][p["device"]] <= p["budget_ms"]
    assert _export(env, "two", "exp-two") == 0
    exported = _exported_archs(env, "exp-two")
    assert sorted(map(json.dumps, exported)) == sorted(map(json.dumps, _distinct_pick_archs(env, "two")))
    summary = json.loads((env["tmp"] / "exp-two" / "summary.json").read_text())
    assert {label for m in summary["models"] for label in m.get("picked_for", [])} == {"dev-a <= 1.2 ms",
                                                                              "dev-b <= 0.9 ms"}


def test_front_record_round_trip_and_format_1_files(env):
    from hwnas.search.front import FrontRecord, Pick, read_front, read_picks

    _search(env, "rt", ("a",), ("2.0",))
    front = read_front(env["tmp"] / "rt" / "front.json")
    raw = json.loads((env["tmp"] / "rt" / "front.json").read_text())
    assert [r.to_dict() for r in front] == raw
    assert all(FrontRecord.from_dict(r.to_dict()) == r for r in front)
    pick = read_picks(env["tmp"] / "rt" / "picks.json")[0]
    assert Pick.from_dict(pick.to_dict()) == pick
    # format 1 (before this version): no "format" key, MACs stored as "flops"
    old = [{"arch": r["arch"], "predicted": r["predicted"], "flops": r["macs"], "params": r["params"]} for r in raw]
    (env["tmp"] / "rt" / "front.json").write_text(json.dumps(old))
    assert read_front(env["tmp"] / "rt" / "front.json") == front


def test_old_run_folder_exports_all_and_explains_budget(env, capsys):
    _search(env, "old", ("a",), ("2.0",))
    run = env["tmp"] / "old"
    raw = json.loads((run / "front.json").read_text())
    (run / "front.json").write_text(json.dumps([{"arch": r["arch"], "predicted": r["predicted"], "flops": r["macs"],
                                                 "params": r["params"]} for r in raw[:2]]))
    (run / "picks.json").unlink()
    assert main(["export", str(run), "--pick", "1", "--supernet", env["supernet"], "--out", str(env["tmp"] / "e1"),
                 "--no-measure", "--calib-images", "16", "--parity-images", "4", "--no-progress"]) == 0
    capsys.readouterr()
    assert _export(env, "old", "e2") == 2
    err = capsys.readouterr().err
    assert "picks.json is missing" in err and "--pick all" in err and "Traceback" not in err


@pytest.mark.parametrize("record, message", [
    ({"arch": {}, "predicted": {"accuracy": 0.5}, "macs": 1, "params": 1, "format": 2}, "predicted.latency_ms"),
    ({"arch": {}, "predicted": {"accuracy": 0.5, "latency_ms": {}}, "params": 1}, "flops"),
    ({"format": 9, "arch": {}}, "format 9"),
])
def test_bad_front_records_name_the_problem(tmp_path, record, message):
    from hwnas.search.front import read_front

    (tmp_path / "front.json").write_text(json.dumps([record]))
    with pytest.raises(Exception, match=message) as info:
        read_front(tmp_path / "front.json")
    assert "record 0" in str(info.value)


def test_export_refuses_a_run_without_front(env, capsys):
    _search(env, "gone", ("a",), ("2.0",))
    (env["tmp"] / "gone" / "front.json").unlink()
    assert _export(env, "gone", "e3") == 2
    assert "front.json does not exist" in capsys.readouterr().err
