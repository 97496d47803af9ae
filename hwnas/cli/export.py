"""``hwnas export``: turn searched architectures into verified ONNX models, measured on real devices.

For every picked model: extract the subnet from the supernet, recalibrate its BN statistics on
training images, fold BN, export to ONNX, check ONNX Runtime against PyTorch on real test images
(relative error <= 1e-4, else the file is removed and the model marked failed), measure the ONNX
model's own test accuracy, time it on each device profile, and optionally quantise it to INT8.
A run folder gets report.md, report.png and summary.json comparing predicted with measured numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hwnas.errors import ArchitectureError, ConfigError, HwnasError, MeasurementError

EXAMPLES = """
examples:
  # every model of a search's Pareto front, measured on the devices the search used
  hwnas export runs/search-cpu --out exports/cpu
  # the best model under each latency budget, also as INT8, timed on one CPU thread
  hwnas export runs/search-cpu --pick budget --int8 --measure cpu-1thread --out exports/budget
  # 5 models spread evenly along the front by latency
  hwnas export runs/search-cpu --pick 5 --out exports/five
  # one architecture (hwnas or once-for-all JSON) from a supernet checkpoint
  hwnas export --arch arch.json --supernet checkpoints/fmnist-mbv3.safetensors --out model.onnx
  # one subnet of the published once-for-all supernet (weights file needed, never downloaded)
  hwnas export --arch ofa_arch.json --supernet ofa-mbv3-w1.0 --weights ofa_mbv3_d234_e346_k357_w1.0 \\
      --data ~/imagenet-val-folder --out ofa_subnet.onnx
"""

OFA_SUPERNET = "ofa-mbv3-w1.0"


def register(sub: argparse._SubParsersAction) -> None:
    from hwnas.export.onnx_export import DEFAULT_OPSET, EXPORTERS

    p = sub.add_parser("export", help="export searched models to ONNX, verify and measure them",
                       description=__doc__ + EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", type=Path, help="search run folder holding front.json and config.json")
    p.add_argument("--out", required=True, type=Path,
                   help="output folder (run mode) or .onnx file (--arch mode); never overwritten without --overwrite")
    p.add_argument("--pick", default="all", help="all | budget (best under each budget) | N (N models spread "
                                                 "along the front by latency); default all")
    p.add_argument("--arch", type=Path, help="export one architecture from this JSON file instead of a run")
    p.add_argument("--supernet", help=f"supernet checkpoint, or {OFA_SUPERNET} with --weights "
                                      "(default in run mode: the run's config.json)")
    p.add_argument("--weights", type=Path, help=f"published once-for-all weights file for --supernet {OFA_SUPERNET}")
    p.add_argument("--measure", nargs="+", metavar="DEVICE",
                   help="device profiles (names or .yaml) to time models on; run mode defaults to the run's devices")
    p.add_argument("--no-measure", action="store_true", help="do not measure latency")
    p.add_argument("--repeats", type=int, help="override the profiles' timed repeats")
    p.add_argument("--int8", action="store_true", help="also write an INT8 (QDQ, per-channel) model per export")
    p.add_argument("--calib-images", type=int, default=1000, help="training images for BN recalibration (1000)")
    p.add_argument("--int8-calib-images", type=int, default=300, help="training images for INT8 ranges (300)")
    p.add_argument("--parity-images", type=int, default=256, help="test images for the parity check (256)")
    p.add_argument("--data", help="data set: 'fashion-mnist' or an image folder (default: the supernet's own)")
    p.add_argument("--batch", type=int, help="fixed batch size (default: a dynamic batch axis)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--exporter", choices=EXPORTERS, default="torchscript", help="torch.onnx exporter")
    p.add_argument("--torch-device", default="cpu", help="torch device for BN recalibration (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration subsets")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.run_dir is None) == (args.arch is None):
        raise ConfigError("give either a RUN_DIR (export a search's front) or --arch FILE (one architecture), "
                          "not both and not neither; see hwnas export --help")
    return _run_single(args) if args.arch is not None else _run_front(args)


# ----------------------------------------------------------------------------------- inputs

@dataclass
class Source:
    """The supernet and data every model of one export is cut from and checked against."""

    net: Any
    label: str
    sha256: str
    dataset: Any
    calib: Any
    int8_calib: Any
    extra: dict[str, Any] = field(default_factory=dict)


def _resolve(path: str, base: Path | None) -> Path:
    """A path as given if it exists, else relative to ``base`` (a run folder's config names files in it)."""
    p = Path(path).expanduser()
    if not p.exists() and base is not None and not p.is_absolute() and (base / p).exists():
        return base / p
    return p


def load_source(supernet: str, weights: Path | None, data: str | None, args: argparse.Namespace,
                base: Path | None = None) -> Source:
    from hwnas.data import calibration_subset
    from hwnas.space import list_spaces
    from hwnas.supernet.checkpoint import file_sha256, load_supernet

    if supernet == OFA_SUPERNET:
        if weights is None:
            raise ConfigError(f"--supernet {OFA_SUPERNET} needs the published weights file: pass --weights "
                              "PATH (ofa_mbv3_d234_e346_k357_w1.0 from the once-for-all release); hwnas never "
                              "downloads weights")
        from hwnas.supernet.ofa_checkpoint import load_ofa_supernet

        net, path, extra = load_ofa_supernet(weights), Path(weights), {}
    else:
        if weights is not None:
            raise ConfigError(f"--weights only applies with --supernet {OFA_SUPERNET}; for an hwnas checkpoint "
                              "pass its path to --supernet")
        path = _resolve(supernet, base)
        if not path.exists() and supernet in list_spaces():
            raise ConfigError(f"--supernet {supernet} names a search space, not weights; pass a trained "
                              f"checkpoint (.safetensors) or {OFA_SUPERNET} with --weights")
        net, extra = load_supernet(path)
    net.eval()
    dataset = _load_data(net.space, data, extra)
    return Source(net=net, label=str(path), sha256=file_sha256(path), dataset=dataset,
                  calib=calibration_subset(dataset.train, _positive(args.calib_images, "--calib-images"), args.seed),
                  int8_calib=calibration_subset(dataset.train, _positive(args.int8_calib_images,
                                                                         "--int8-calib-images"), args.seed + 1),
                  extra=extra)


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise ConfigError(f"{flag} must be a positive image count, got {value}")
    return value


def _load_data(space: Any, data: str | None, extra: dict[str, Any]) -> Any:
    from hwnas.data import load_dataset

    train_config = extra.get("train_config") or {}
    source = data or train_config.get("dataset")
    if source is None:
        raise ConfigError(f"the supernet does not say which data it was trained on; pass --data (an image folder "
                          f"with {space.num_classes} classes, or 'fashion-mnist')")
    dataset = load_dataset(source, val_size=train_config.get("val_size"), seed=train_config.get("seed", 0),
                           in_channels=space.in_channels)
    if dataset.num_classes != space.num_classes:
        raise ConfigError(f"data set {source!r} has {dataset.num_classes} classes but space {space.name!r} "
                          f"has {space.num_classes}; pass the data the supernet was trained on with --data")
    return dataset


def _read_arch_file(path: Path, space: Any) -> Any:
    from hwnas.arch import Architecture

    if not path.is_file():
        raise ArchitectureError(f"architecture file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArchitectureError(f"{path} is not valid JSON ({exc}); fix the file") from None
    if isinstance(data, dict) and isinstance(data.get("arch"), dict):
        data = data["arch"]  # a front.json record
    return Architecture.from_dict(data, space)


def _measurers(devices: Sequence[str], repeats: int | None, explicit: bool, base: Path | None) -> dict[str, Any]:
    """Device name -> measurer. Asked-for devices must work; a run's own devices are skipped with a warning."""
    from hwnas.latency.device import load_device_profile
    from hwnas.latency.measure import make_measurer

    out: dict[str, Any] = {}
    for spec in devices:
        looks_like_path = spec.endswith((".yaml", ".yml")) or "/" in spec
        try:
            profile = load_device_profile(_resolve(spec, base) if looks_like_path else spec)
            if repeats is not None:
                profile = profile.replace(repeats=repeats)
            out[profile.name] = make_measurer(profile)
        except (MeasurementError, ConfigError) as exc:
            if explicit:
                raise
            print(f"hwnas export: warning: not measuring on {spec}: {exc}", file=sys.stderr)
    return out


# ----------------------------------------------------------------------------------- one model

@dataclass
class ExportOptions:
    batch: int | None
    opset: int
    exporter: str
    int8: bool
    parity_images: int
    torch_device: str


def export_one(source: Source, arch: Any, path: Path, name: str, measurers: dict[str, Any],
               options: ExportOptions, predicted: dict[str, Any] | None = None,
               front_flops: int | None = None) -> Any:
    """Recalibrate, export, verify, evaluate, measure (and quantise) one model -> ModelResult.

    An :class:`HwnasError` while exporting or verifying marks the model failed (the file removed);
    the caller carries on with the next model.
    """
    from hwnas.complexity import macs_and_params
    from hwnas.export.onnx_export import check_parity, export_subnet, model_metadata, onnx_accuracy, \
        prepared_images
    from hwnas.export.report import ModelFile, ModelResult
    from hwnas.supernet.calibration import recalibrate_bn

    space, data = source.net.space, source.dataset
    macs, params = macs_and_params(space, arch)
    predicted = predicted or {}
    result = ModelResult(name=name, arch=arch.to_dict(), macs=macs, params=params,
                         predicted_accuracy=predicted.get("accuracy"),
                         predicted_latency_ms=dict(predicted.get("latency_ms") or {}), front_flops=front_flops)
    subnet = source.net.extract(arch).to(options.torch_device)
    recalibrate_bn(subnet, source.calib, arch.resolution, data.mean, data.std, device=options.torch_device)
    subnet = subnet.cpu().eval()
    meta = model_metadata(arch, space, predicted=predicted, supernet_sha256=source.sha256, mean=data.mean,
                          std=data.std, class_names=data.class_names, supernet=Path(source.label).name,
                          dataset=data.name, bn_calibration_images=len(source.calib))
    try:
        export_subnet(subnet, arch, path, batch=options.batch, opset=options.opset, metadata=meta,
                      exporter=options.exporter)
        inputs = prepared_images(data.test, options.parity_images, arch.resolution, data.mean, data.std)
        max_abs, max_rel = check_parity(path, subnet, inputs)
    except HwnasError as exc:
        result.status, result.error = "failed", str(exc)
        return result
    result.parity = {"max_abs": max_abs, "max_rel": max_rel, "images": len(inputs)}
    result.fp32 = ModelFile(path=str(path), size_bytes=path.stat().st_size,
                            accuracy=onnx_accuracy(path, data.test, arch.resolution, data.mean, data.std))
    _measure_into(result.fp32, _one_at_a_time(measurers), path, subnet, space.in_channels, arch.resolution,
                  options.batch)
    if options.int8:
        try:
            result.int8 = _int8(source, path, arch, measurers, options)
        except HwnasError as exc:  # the verified FP32 model stays; the run still reports the failure
            result.status, result.error = "failed", f"INT8: {exc}"
    return result


def _int8(source: Source, path: Path, arch: Any, measurers: dict[str, Any], options: ExportOptions) -> Any:
    from hwnas.export.onnx_export import onnx_accuracy
    from hwnas.export.quantize import quantize_int8
    from hwnas.export.report import ModelFile

    data = source.dataset
    q_path = quantize_int8(path, int8_path(path), source.int8_calib, resolution=arch.resolution,
                           mean=data.mean, std=data.std)
    q = ModelFile(path=str(q_path), size_bytes=q_path.stat().st_size,
                  accuracy=onnx_accuracy(q_path, data.test, arch.resolution, data.mean, data.std))
    _measure_into(q, _one_at_a_time(measurers), q_path, None, source.net.space.in_channels, arch.resolution,
                  options.batch)
    return q


def int8_path(path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    return path.with_name(path.name[:-5] + ".int8.onnx" if path.name.endswith(".onnx") else path.name + ".int8")


def _one_at_a_time(measurers: dict[str, Any]) -> dict[str, Any]:
    """Measurers that time each model as it is exported (torch-cuda); ONNX Runtime ones (local or an
    agent) wait for :func:`measure_together`."""
    return {d: m for d, m in measurers.items() if not hasattr(m, "measure_interleaved")}


def speed_references(space: Any, devices: Sequence[str], tables: dict[str, str] | None,
                     base: Path | None) -> dict[str, dict[str, Any]]:
    """Device -> the speed reference stored with its latency table (the run's table, else the one
    ``hwnas profile`` writes by default); devices without one are measured without it."""
    from hwnas.latency.device import load_device_profile
    from hwnas.latency.table import LatencyTable, table_path

    out = {}
    for device in devices:
        path = (tables or {}).get(device)
        try:
            slug = load_device_profile(device).slug
        except (ConfigError, MeasurementError):
            slug = device
        candidates = ([_resolve(path, base)] if path else []) + [table_path("latency_tables", slug, space)]
        for candidate in candidates:
            try:
                reference = LatencyTable.load(candidate, space).meta.get("reference")
            except HwnasError:
                continue
            if reference:
                out[device] = {**reference, "table": str(candidate)}
                break
    return out


def measure_together(results: Sequence[Any], measurers: dict[str, Any], space: Any, batch: int | None,
                     progress: bool = True, references: dict[str, dict[str, Any]] | None = None) -> None:
    """Time every exported file (FP32 and INT8) on each ONNX Runtime device (local or an agent) in shared
    interleaved passes, the protocol its latency table was profiled with, so predicted and measured
    compare fairly.

    Where the device's table has a speed reference, that graph is timed in the same passes: the ratio
    of its latency now to its latency at profiling time says how much faster or slower the machine
    runs today (shared and virtualised machines drift), and ``ms_at_profile_speed`` divides it out.
    """
    from hwnas.arch import Architecture
    from hwnas.latency.block_models import reference_graph
    from hwnas.latency.measure import LATENCY_STATISTIC, single_torch_thread, time_models

    files = [(f, r.arch["resolution"]) for r in results for f in (r.fp32, r.int8) if f is not None]
    for device, measurer in measurers.items():
        if not hasattr(measurer, "measure_interleaved") or not files:
            continue
        size = batch or measurer.profile.batch_size
        models = [(Path(f.path).read_bytes(), (size, space.in_channels, res, res)) for f, res in files]
        reference = (references or {}).get(device)
        if reference is not None:
            models.append(reference_graph(space, Architecture.from_dict(reference["arch"], space), size))
        bar = _pass_bar(device, measurer.profile.repeats, progress)
        try:
            with single_torch_thread():
                stats = time_models(measurer, models, progress=bar)
        except MeasurementError as exc:
            print(f"hwnas export: warning: models not measured on {device}: {exc}", file=sys.stderr)
            for f, _ in files:
                f.skipped[device] = str(exc)
            continue
        speed = None
        if reference is not None:
            now = stats.pop().value(LATENCY_STATISTIC)
            speed = {"reference_ms_now": now, "reference_ms_profiled": float(reference["ms"]),
                     "slowdown": now / float(reference["ms"]), "table": reference["table"]}
        for (f, _), st in zip(files, stats):
            ms = st.value(LATENCY_STATISTIC)
            f.latency[device] = {**st.to_dict(), "ms": ms, "statistic": LATENCY_STATISTIC}
            if speed is not None:
                f.latency[device].update(speed=speed, ms_at_profile_speed=ms / speed["slowdown"])


def _pass_bar(device: str, passes: int, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    from hwnas.latency.measure import MIN_MEASURE_SECONDS

    desc = f"measuring on {device} (then more passes until {MIN_MEASURE_SECONDS:g} s)"
    return lambda items: tqdm(items, desc=desc, total=passes, unit="pass", dynamic_ncols=True)


def _measure_into(record: Any, measurers: dict[str, Any], path: Path, subnet: Any, channels: int,
                  resolution: int, batch: int | None) -> None:
    """Time ``path`` on every device; torch-cuda profiles time the (BN-folded) PyTorch module, as their
    latency tables do, so INT8 files are skipped there."""
    from hwnas.export.bn_fold import fold_batchnorm
    from hwnas.latency.measure import TorchCudaMeasurer

    for device, measurer in measurers.items():
        shape = (batch or measurer.profile.batch_size, channels, resolution, resolution)
        try:
            if isinstance(measurer, TorchCudaMeasurer):
                if subnet is None:
                    record.skipped[device] = "INT8 ONNX models are not timed on torch-cuda profiles"
                    continue
                stats = measurer.measure_module(fold_batchnorm(subnet), shape)
            else:
                stats = measurer.measure_onnx(path.read_bytes(), shape)
        except MeasurementError as exc:
            record.skipped[device] = str(exc)
            print(f"hwnas export: warning: {path.name} not measured on {device}: {exc}", file=sys.stderr)
            continue
        record.latency[device] = {**stats.to_dict(), "ms": stats.median_ms, "statistic": "median"}


# ----------------------------------------------------------------------------------- output folders

def _check_out_file(out: Path, overwrite: bool, int8: bool) -> None:
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; with --arch give a file name such as {out / 'model.onnx'}")
    if out.suffix != ".onnx":
        raise ConfigError(f"--out {out} should end in .onnx (with --arch it names the model file)")
    targets = [out] + ([int8_path(out)] if int8 else [])
    existing = [t for t in targets if t.exists() and t.stat().st_size > 0]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} already exists; choose another --out or pass --overwrite")


def _prepare_out_dir(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for a run's exports")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"--out {out} exists and is not empty; choose another folder or pass --overwrite")
        for stale in [out / "report.md", out / "report.png", out / "summary.json"]:
            stale.unlink(missing_ok=True)
        if (out / "models").is_dir():  # only our own files; anything else in --out is left alone
            for stale in (out / "models").glob("*.onnx"):
                stale.unlink()
    (out / "models").mkdir(parents=True, exist_ok=True)
    return out / "models"


def _options(args: argparse.Namespace) -> ExportOptions:
    from hwnas.export.onnx_export import _check_options

    _check_options(args.batch, args.opset, args.exporter)
    return ExportOptions(batch=args.batch, opset=args.opset, exporter=args.exporter, int8=args.int8,
                         parity_images=_positive(args.parity_images, "--parity-images"),
                         torch_device=args.torch_device)


# ----------------------------------------------------------------------------------- single architecture

def _run_single(args: argparse.Namespace) -> int:
    if args.pick != "all":
        raise ConfigError("--pick applies to a RUN_DIR, not to --arch")
    if args.supernet is None:
        raise ConfigError(f"--arch needs --supernet (a checkpoint path, or {OFA_SUPERNET} with --weights)")
    out = Path(args.out)
    _check_out_file(out, args.overwrite, args.int8)
    options = _options(args)
    source = load_source(args.supernet, args.weights, args.data, args)
    arch = _read_arch_file(args.arch, source.net.space)
    devices = [] if args.no_measure else (args.measure or [])
    measurers = _measurers(devices, args.repeats, explicit=True, base=None)
    result = export_one(source, arch, out, out.stem, measurers, options)
    references = speed_references(source.net.space, list(measurers), None, None)
    measure_together([result], measurers, source.net.space, options.batch, progress=False, references=references)
    if result.status != "ok":
        print(f"hwnas export: {result.error}", file=sys.stderr)
        return 1
    _print_result(result, list(measurers))
    return 0


def _print_result(result: Any, devices: Sequence[str]) -> None:
    for label, f in (("FP32", result.fp32), ("INT8", result.int8)):
        if f is None:
            continue
        lat = ", ".join(f"{d} {f.latency_ms(d):.3f} ms" for d in devices if f.latency_ms(d) is not None)
        print(f"{label} {f.path}: {f.size_bytes / 1e6:.2f} MB, test accuracy {100 * f.accuracy:.2f}%"
              + (f", {lat}" if lat else ""))
    if result.parity:
        print(f"parity vs PyTorch: max rel {result.parity['max_rel']:.2e} on {result.parity['images']} test images")


# ----------------------------------------------------------------------------------- search run

FRONT_KEYS = ("arch", "predicted")
PREDICTED_KEYS = ("accuracy", "latency_ms")


def read_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``config.json`` and ``front.json`` of a search run, checked for the keys export needs."""
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist; pass the --out folder of `hwnas search`")
    docs = []
    for name in ("config.json", "front.json"):
        path = run_dir / name
        if not path.is_file():
            raise ConfigError(f"{path} is missing; {run_dir} is not a finished `hwnas search` run")
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc}); rerun the search") from None
    config, front = docs
    if not isinstance(config, dict) or "supernet" not in config or "space" not in config:
        raise ConfigError(f"{run_dir / 'config.json'} lacks 'supernet' or 'space'; it was not written by `hwnas search`")
    if not isinstance(front, list) or not front:
        raise ConfigError(f"{run_dir / 'front.json'} holds no models (expected a non-empty list of records)")
    for i, record in enumerate(front):
        missing = [k for k in FRONT_KEYS if not isinstance(record, dict) or k not in record]
        missing += [f"predicted.{k}" for k in PREDICTED_KEYS
                    if not missing and (not isinstance(record["predicted"], dict) or k not in record["predicted"])]
        if missing:
            raise ConfigError(f"{run_dir / 'front.json'} record {i} lacks {', '.join(missing)}; expected "
                              "{arch, predicted: {accuracy, latency_ms}, flops, params}")
    return config, front


def _primary_device(config: dict[str, Any], front: list[dict[str, Any]]) -> str:
    """The device budgets and spreading refer to: the run's first device, as named in the predictions."""
    names = list(front[0]["predicted"]["latency_ms"])
    if not names:
        raise ConfigError("front.json has no predicted latencies; cannot pick by latency")
    for spec in config.get("devices") or []:
        stem = Path(str(spec)).stem
        if stem in names:
            return stem
    return names[0]


def budget_constraints(budget: Any, primary: str) -> list[dict[str, float]]:
    """config's ``budget_ms`` (number, list, {device: number} or {device: [numbers]}) -> constraints."""
    try:
        if isinstance(budget, (int, float)) and not isinstance(budget, bool):
            return [{primary: float(budget)}]
        if isinstance(budget, list):
            return [{primary: float(b)} for b in budget]
        if isinstance(budget, dict):
            if all(isinstance(v, (int, float)) for v in budget.values()):
                return [{d: float(v) for d, v in budget.items()}]
            return [{d: float(b)} for d, v in budget.items() for b in (v if isinstance(v, list) else [v])]
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"config.json budget_ms {budget!r} is not a number, a list of numbers or a "
                      "{device: number or [numbers]} mapping; --pick budget needs one")


def pick_models(front: list[dict[str, Any]], pick: str, config: dict[str, Any]) -> list[int]:
    """Indices into ``front`` for --pick all | budget | N."""
    primary = _primary_device(config, front)

    def latency(i: int, device: str = primary) -> float:
        value = front[i]["predicted"]["latency_ms"].get(device)
        return float("inf") if value is None else float(value)

    by_latency = sorted(range(len(front)), key=latency)
    if pick == "all":
        return by_latency
    if pick == "budget":
        if config.get("budget_ms") is None:
            raise ConfigError("--pick budget: config.json has no budget_ms; use --pick all or N")
        chosen = []
        for constraint in budget_constraints(config["budget_ms"], primary):
            feasible = [i for i in range(len(front)) if all(latency(i, d) <= b for d, b in constraint.items())]
            if not feasible:
                print(f"hwnas export: warning: no front model meets budget {constraint} ms", file=sys.stderr)
                continue
            best = max(feasible, key=lambda i: float(front[i]["predicted"]["accuracy"]))
            if best not in chosen:
                chosen.append(best)
        return sorted(chosen, key=latency)
    try:
        n = int(pick)
    except ValueError:
        raise ConfigError(f"--pick {pick!r}: use all, budget or a number of models") from None
    if n < 1:
        raise ConfigError(f"--pick {n}: pick at least one model")
    if n >= len(by_latency):
        return by_latency
    import numpy as np

    spots = np.unique(np.round(np.linspace(0, len(by_latency) - 1, n)).astype(int))
    return [by_latency[s] for s in spots]


def _run_front(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import hwnas
    from hwnas.export.report import write_report

    run_dir = Path(args.run_dir)
    config, front = read_run(run_dir)
    picked = pick_models(front, str(args.pick), config)
    options = _options(args)
    models_dir = _prepare_out_dir(Path(args.out), args.overwrite)
    source = load_source(args.supernet or str(config["supernet"]), args.weights, args.data, args, base=run_dir)
    if source.net.space.name != config["space"]:
        raise ConfigError(f"the supernet is for space {source.net.space.name!r} but the run searched "
                          f"{config['space']!r}; pass the run's supernet with --supernet")
    explicit = args.measure is not None
    devices = [] if args.no_measure else (args.measure if explicit else [str(d) for d in config.get("devices") or []])
    measurers = _measurers(devices, args.repeats, explicit, base=run_dir)
    results = []
    bar = tqdm(picked, desc="export", unit="model", disable=args.no_progress)
    for i in bar:
        record = front[i]
        name = f"front{i:03d}"
        bar.set_postfix_str(name)
        arch = _front_arch(record, source.net.space, i)
        results.append(export_one(source, arch, models_dir / f"{name}.onnx", name, measurers, options,
                                  predicted=record["predicted"], front_flops=record.get("flops")))
    references = speed_references(source.net.space, list(measurers), config.get("latency_tables"), run_dir)
    measure_together(results, measurers, source.net.space, options.batch, progress=not args.no_progress,
                     references=references)
    context = {"run": str(run_dir), "supernet": source.label, "supernet sha256": source.sha256,
               "space": f"{source.net.space.name} ({source.net.space.fingerprint()})",
               "data": source.dataset.summary(), "BN calibration images": len(source.calib),
               "exporter": f"{options.exporter}, opset {options.opset}, batch {options.batch or 'dynamic'}",
               "pick": args.pick, "hwnas": hwnas.__version__}
    paths = write_report(args.out, results, list(measurers), context)
    failed = [r for r in results if r.status != "ok"]
    print(f"exported {len(results) - len(failed)} of {len(results)} models to {models_dir}; "
          f"report: {paths['markdown']}")
    for r in failed:
        print(f"hwnas export: {r.name} failed: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _front_arch(record: dict[str, Any], space: Any, index: int) -> Any:
    from hwnas.arch import Architecture

    try:
        return Architecture.from_dict(record["arch"], space)
    except ArchitectureError as exc:
        raise ArchitectureError(f"front.json record {index}: {exc}") from None
