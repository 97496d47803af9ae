"""The README's "Your once-for-all ImageNet files on your device" workflow, run end to end (issue 19).

The three commands are read from the README itself (so they cannot rot) and run in a scratch folder
on once-for-all files this test builds with the ``ofa`` package: a random-weight
``OFAMobileNetV3`` (width 1.2) saved as OFA saves it, and a random-weight tutorial
``AccuracyPredictor`` saved as the published ``acc_predictor.pth``. Only sizes change: one
resolution, a few profiling subnets, a small search and a budget any machine meets. No ImageNet,
no download.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.cli import main
from hwnas.export.onnx_export import read_metadata
from ofa_stub import require_ofa  # tests/ is on sys.path
from test_ofa_parity import randomize

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Your once-for-all ImageNet files on your device"
WEIGHTS = "ofa_mbv3_d234_e346_k357_w1.2"
# What the test shrinks, per command: option -> value in the test (None: a flag). Export skips timing
# (the profile step already timed this CPU; measuring holds models for >= 5 s).
SMALLER = {"profile": {"--resolutions": "128", "--calibrate": "4", "--validate": "4"},
           "search": {"--budget-ms": "1000", "--evaluations": "200", "--population": "16"},
           "export": {"--parity-images": "8", "--no-measure": None}}


def readme_workflow() -> list[list[str]]:
    """The hwnas commands of the section's bash block, in order, as argument lists."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(HEADING):]
    section = section[:section.index("\n## ", len(HEADING))]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    lines = [ln.strip() for ln in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(ln)[1:] for ln in lines if ln.startswith("hwnas ")]


def shrink(argv: list[str]) -> list[str]:
    out = list(argv)
    for option, value in SMALLER[argv[0]].items():
        if value is None:
            out.append(option)
        elif option in out:
            out[out.index(option) + 1] = value
        else:
            out += [option, value]
    return out + ["--no-progress"]


@pytest.fixture(scope="module")
def ofa_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the two published once-for-all files, with random weights."""
    folder = tmp_path_factory.mktemp("ofa_user")
    net_cls = require_ofa("ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3", "OFAMobileNetV3")
    net = randomize(net_cls(n_classes=1000, dropout_rate=0, width_mult=1.2, ks_list=[3, 5, 7],
                            expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]), seed=0)
    torch.save({"state_dict": net.state_dict()}, folder / WEIGHTS)
    predictor_cls = require_ofa("ofa.tutorial.accuracy_predictor", "AccuracyPredictor", standalone=True)
    torch.save(randomize(predictor_cls(pretrained=False, device="cpu").model, seed=1).state_dict(),
               folder / "acc_predictor.pth")
    return folder


def test_readme_shows_profile_search_export():
    assert [argv[0] for argv in readme_workflow()] == ["profile", "search", "export"]


def test_readme_ofa_workflow_runs_end_to_end(ofa_files, monkeypatch, capsys):
    monkeypatch.chdir(ofa_files)
    profile, search, export = (shrink(argv) for argv in readme_workflow())
    assert main(profile) == 0
    table = json.loads(Path("latency_tables/cpu-1thread/ofa-mbv3-w1.2.json").read_text())
    assert table["resolutions"] == [128]

    assert main(search) == 0
    run = Path(search[search.index("--out") + 1])
    config = json.loads((run / "config.json").read_text())
    assert config["resolutions"] == [128] and config["predictor"] == "acc_predictor.pth"
    front = json.loads((run / "front.json").read_text())
    accuracies = [r["predicted"]["accuracy"] for r in front]
    assert all(isinstance(a, float) for a in accuracies) and len(set(accuracies)) == len(front)

    capsys.readouterr()
    assert main(export) == 0
    assert "keeping the supernet's own BN statistics" in capsys.readouterr().err
    models = sorted(Path(export[export.index("--out") + 1], "models").glob("*.onnx"))
    picks = json.loads((run / "picks.json").read_text())
    assert len(models) == len({json.dumps(p["arch"]) for p in picks if p["arch"]}) >= 1
    assert read_metadata(models[0])["bn_calibration_images"] == 0
    summary = json.loads(Path(export[export.index("--out") + 1], "summary.json").read_text())
    (model,) = summary["models"][:1]
    assert model["status"] == "ok" and model["parity"]["inputs"] == "random inputs"
    assert model["parity"]["images"] == 8 and model["parity"]["max_rel"] <= 1e-4
    assert model["fp32"]["accuracy"] is None
    assert np.isfinite(model["fp32"]["size_bytes"])
