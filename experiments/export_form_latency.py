"""Does the form of an ONNX graph change its latency? Table graphs against deployed exports, one run.

``hwnas profile`` times graphs exported with a fixed input shape (batch 1); ``hwnas export`` writes
models with a dynamic batch axis (what a deployment wants), BN folded by hand. Both use the
TorchScript exporter at opset 17. If the two forms ran at different speeds, a table would predict
a different model than the one deployed. Here the same ``--n`` random subnets are exported in both
forms and all ``2 n`` graphs are timed together in one interleaved run
(:func:`hwnas.latency.measure.time_models`, the protocol exports are measured with), so machine
drift hits both forms alike; the result is the deployed/table latency ratio per subnet.

Run: ``python experiments/export_form_latency.py`` (about a minute)
Result: ``experiments/results/export_form_latency.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import numpy as np
import torch

from hwnas.atomic_io import atomic_write_json
from hwnas.export.bn_fold import fold_batchnorm
from hwnas.export.onnx_export import to_onnx
from hwnas.export.settings import DEFAULT_OPSET
from hwnas.latency.block_models import ONNX_OPSET, subnet_onnx
from hwnas.latency.device import load_device_profile
from hwnas.latency.measure import TimingProtocol, make_measurer, single_torch_thread, time_models
from hwnas.latency.profiler import sample_distinct
from hwnas.metrics import prediction_agreement
from hwnas.space import get_space
from hwnas.supernet.network import ElasticMobileNetV3

REPO = Path(__file__).resolve().parents[1]


def deployed_graph(net: ElasticMobileNetV3, arch, batch: int) -> tuple[bytes, tuple[int, ...]]:
    """The subnet as ``hwnas export`` writes it: BN folded, dynamic batch axis, the default opset."""
    subnet = fold_batchnorm(net.extract(arch).eval())
    channels = net.space.in_channels
    proto = to_onnx(subnet, (channels, arch.resolution, arch.resolution), batch=None, opset=DEFAULT_OPSET)
    return proto.SerializeToString(), (batch, channels, arch.resolution, arch.resolution)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu-1thread")
    ap.add_argument("--space", default="fmnist-mbv3")
    ap.add_argument("--n", type=int, default=12, help="random subnets, each timed in both forms")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "export_form_latency.json")
    args = ap.parse_args()
    space = get_space(args.space)
    profile = load_device_profile(args.device)
    torch.manual_seed(0)
    net = ElasticMobileNetV3(space).eval()
    archs = sample_distinct(space, args.n, (args.seed, 5), space.resolutions)
    with single_torch_thread(), torch.no_grad():
        table_form = [subnet_onnx(net, a, profile.batch_size) for a in archs]
        deployed = [deployed_graph(net, a, profile.batch_size) for a in archs]
    load_before = os.getloadavg()
    protocol = TimingProtocol()
    stats = time_models(make_measurer(profile), table_form + deployed, protocol=protocol)
    table_ms = np.array([s.value(protocol.statistic) for s in stats[:args.n]])
    deployed_ms = np.array([s.value(protocol.statistic) for s in stats[args.n:]])
    ratio = deployed_ms / table_ms
    result = {
        "device": profile.name, "space": space.name, "n": args.n, "seed": args.seed,
        "forms": {"table": f"fixed input shape, opset {ONNX_OPSET}, TorchScript exporter with constant folding",
                  "deployed": f"dynamic batch axis, opset {DEFAULT_OPSET}, BN folded, TorchScript exporter"},
        "protocol": {"statistic": protocol.statistic, "burst": protocol.burst, "passes": profile.repeats,
                     "interleaved": "all 2n graphs in the same passes"},
        "ratio_deployed_over_table": {"median": float(np.median(ratio)), "mean": float(np.mean(ratio)),
                                      "min": float(ratio.min()), "max": float(ratio.max())},
        "table_form_as_prediction_of_deployed": prediction_agreement(table_ms, deployed_ms),
        "models": [{"arch": a.to_dict(), "table_ms": float(t), "deployed_ms": float(d)}
                   for a, t, d in zip(archs, table_ms, deployed_ms)],
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(args.out, result)
    r = result["ratio_deployed_over_table"]
    print(f"{'subnet':>6} {'table ms':>9} {'deployed ms':>12} {'ratio':>6}")
    for i, (t, d) in enumerate(zip(table_ms, deployed_ms)):
        print(f"{i:>6} {t:>9.3f} {d:>12.3f} {d / t:>6.3f}")
    print(f"deployed / table latency: median {r['median']:.3f}, range {r['min']:.3f}-{r['max']:.3f} over {args.n} "
          f"subnets (load average {load_before[0]:.1f}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
