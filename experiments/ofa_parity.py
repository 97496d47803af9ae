"""OFA parity as a result file: our supernet against once-for-all's on the same random weights.

The comparison is the one ``tests/test_ofa_parity.py`` asserts (its helpers are imported, not
copied): OFA's MobileNetV3 supernet with random weights that make every part matter, saved in both
published key styles, loaded into ours, and compared subnet by subnet (the largest at 224 px, the
smallest at 128 px and random subnets; statically extracted subnets for every other one). The test
only checks a tolerance; this script records the measured differences.

Run: ``python experiments/ofa_parity.py``; writes ``experiments/results/ofa_parity.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from hwnas.atomic_io import atomic_write_json
from hwnas.supernet.ofa_checkpoint import load_ofa_supernet

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import test_ofa_parity as parity  # noqa: E402  (the test's own comparison, reused)


@torch.no_grad()
def measure() -> dict:
    """Max |difference| of the logits per subnet and per path (key style, extraction)."""
    ofa_net = parity.randomize(parity._import_ofa_mbv3()(width_mult=1.0, **parity.OFA_KWARGS), seed=0)
    with tempfile.TemporaryDirectory(prefix="hwnas-ofa-parity-") as tmp:
        loaded = {style: load_ofa_supernet(path) for style, path in parity.write_ofa_files(ofa_net, Path(tmp)).items()}
        rows = [{"index": i, "arch": arch.to_dict(), "what": what, "max_abs_diff": (y - expected).abs().max().item(),
                 "max_abs_logit": expected.abs().max().item()}
                for i, arch, _, expected, outputs in parity.parity_outputs(ofa_net, loaded)
                for what, y in outputs.items()]
    per_path = {}
    for r in rows:
        per_path[r["what"]] = max(per_path.get(r["what"], 0.0), r["max_abs_diff"])
    return {"subnets": len({r["index"] for r in rows}), "key_styles": sorted({r["what"] for r in rows} - {"extract"}),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows), "max_abs_diff_per_path": per_path,
            "tolerance_in_test": parity.TOL, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "ofa_parity.json")
    args = ap.parse_args(argv)
    started = time.time()
    report = {**measure(), "weights": "random (tests/test_ofa_parity.py:randomize, seed 0)",
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "wall_s": round(time.time() - started, 1)}
    atomic_write_json(args.out, report)
    print(f"{report['subnets']} subnets, key styles {report['key_styles']}: max |diff| {report['max_abs_diff']:.2g} "
          f"(test tolerance {parity.TOL:g}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
