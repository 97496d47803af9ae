"""The export pipeline: searched architectures -> verified ONNX models, measured on real devices.

For every chosen model: extract the subnet from the supernet, recalibrate its BN statistics on
training images, fold BN, export to ONNX, check ONNX Runtime against PyTorch on real test images
(relative error <= 1e-4, else the file is removed and the model marked failed), measure the ONNX
model's own test accuracy, optionally quantise it to INT8 (always for a model searched at INT8,
``hwnas search --precision int8``: its predictions are compared with the INT8 file), then time every file on each device
with the protocol of that device's latency table (:func:`hwnas.latency.measure.time_models`,
the table's speed reference timed beside them). A run folder gets report.md, report.png and
summary.json comparing predicted with measured numbers.

Entry points: :func:`export_run` (a search's run folder) and :func:`export_architecture` (one
architecture file); both take an :class:`~hwnas.export.settings.ExportSettings`. ``hwnas export``
is a thin shell over them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from hwnas.errors import ArchitectureError, ConfigError, HwnasError, MeasurementError
from hwnas.export.settings import OFA_SUPERNET, OFA_SUPERNETS, ExportSettings
from hwnas.search.front import FrontRecord, load_arch_file, read_front, read_json, read_picks

Warn = Callable[[str], None]

#: once-for-all's ImageNet preprocessing (its data provider's normalisation): what an OFA subnet expects
#: when the export reads no images to take statistics from.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KEEP_BN_WARNING = ("--calib-images 0: keeping the supernet's own BN statistics (no recalibration); a subnet's "
                   "accuracy is lower than after recalibrating on a few thousand training images (--data FOLDER "
                   "--calib-images 2000)")


def _stderr_warning(message: str) -> None:
    print(f"hwnas export: warning: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------- inputs

@dataclass
class Source:
    """The supernet and data every model of one export is cut from and checked against.

    ``dataset`` None: the export reads no images (``--calib-images 0 --eval-images 0``); parity
    then runs on seeded random inputs. ``calib`` None: keep the supernet's BN statistics;
    ``test`` is the capped evaluation subset (None: no accuracy)."""

    net: Any
    label: str
    sha256: str
    dataset: Any
    calib: Any
    int8_calib: Any
    test: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    ofa: bool = False

    @property
    def normalization(self) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        """(mean, std) of the inputs: once-for-all's ImageNet values for its supernets, else the data
        set's; unknown (None, None: not stamped into the model) without data."""
        if self.ofa:  # once-for-all trained with these, whatever folder recalibrates or evaluates it
            return IMAGENET_MEAN, IMAGENET_STD
        if self.dataset is not None:
            return self.dataset.mean, self.dataset.std
        return None, None


def resolve_path(path: str, base: Path | None) -> Path:
    """A path as given if it exists, else relative to ``base`` (a run folder's config names files in it)."""
    p = Path(path).expanduser()
    if not p.exists() and base is not None and not p.is_absolute() and (base / p).exists():
        return base / p
    return p


def load_source(supernet: str, settings: ExportSettings, base: Path | None = None,
                warn: Warn = _stderr_warning) -> Source:
    """The supernet (an hwnas checkpoint, or the published OFA one with ``settings.weights``) and the
    images the export needs (none with ``--calib-images 0 --eval-images 0``)."""
    from hwnas.data import calibration_subset
    from hwnas.space import list_spaces
    from hwnas.supernet.checkpoint import file_sha256, load_supernet

    if supernet in OFA_SUPERNETS:
        if settings.weights is None:
            raise ConfigError(f"--supernet {supernet} needs the published weights file: pass --weights PATH "
                              f"({OFA_SUPERNETS[supernet]} from the once-for-all "
                              "release); hwnas never downloads weights")
        from hwnas.supernet.ofa_checkpoint import load_ofa_supernet

        net, path, extra = load_ofa_supernet(settings.weights, supernet), Path(settings.weights), {}
    else:
        if settings.weights is not None:
            raise ConfigError(f"--weights only applies with --supernet {' or '.join(OFA_SUPERNETS)}; for an "
                              "hwnas checkpoint pass its path to --supernet")
        path = resolve_path(supernet, base)
        if not path.exists() and supernet in list_spaces():
            raise ConfigError(f"--supernet {supernet} names a search space, not weights; pass a trained "
                              f"checkpoint (.safetensors) or {OFA_SUPERNET} with --weights")
        net, extra = load_supernet(path)
    net.eval()
    if settings.calib_images == 0:
        warn(KEEP_BN_WARNING)
    dataset = _load_data(net.space, settings.data, extra) if settings.needs_data else None

    def subset(split_name: str, n: int, seed: int) -> Any:
        return calibration_subset(getattr(dataset, split_name), n, seed) if dataset is not None and n > 0 else None

    return Source(net=net, label=str(path), sha256=file_sha256(path), dataset=dataset,
                  calib=subset("train", settings.calib_images, settings.seed),
                  int8_calib=subset("train", settings.int8_calib_images if settings.int8 else 0, settings.seed + 1),
                  test=subset("test", settings.eval_images, settings.seed + 2), extra=extra,
                  ofa=supernet in OFA_SUPERNETS)


def _load_data(space: Any, data: str | None, extra: dict[str, Any]) -> Any:
    from hwnas.data import load_dataset

    train_config = extra.get("train_config") or {}
    source = data or train_config.get("dataset")
    if source is None:
        raise ConfigError(f"the supernet does not say which data it was trained on; pass --data (an image folder "
                          f"with {space.num_classes} classes, or 'fashion-mnist'), or export without images: "
                          "--calib-images 0 --eval-images 0 (keeps its BN statistics, parity on random inputs)")
    # an image folder stays on disk: only the calibration, evaluation and parity images are decoded,
    # and images of mixed sizes (an ImageNet folder) are resized to the space's largest resolution
    dataset = load_dataset(source, val_size=train_config.get("val_size"), seed=train_config.get("seed", 0),
                           in_channels=space.in_channels, decode=False, mixed_size=max(space.resolutions))
    if dataset.num_classes != space.num_classes:
        raise ConfigError(f"data set {source!r} has {dataset.num_classes} classes but space {space.name!r} "
                          f"has {space.num_classes}; pass the data the supernet was trained on with --data")
    return dataset


def make_measurers(devices: Sequence[str], repeats: int | None, explicit: bool, base: Path | None,
                   warn: Warn = _stderr_warning) -> dict[str, Any]:
    """Device name -> measurer. Asked-for devices must work; a run's own devices are skipped with a warning."""
    from hwnas.latency.device import load_device_profile
    from hwnas.latency.measure import make_measurer

    out: dict[str, Any] = {}
    for spec in devices:
        looks_like_path = spec.endswith((".yaml", ".yml")) or "/" in spec
        try:
            profile = load_device_profile(resolve_path(spec, base) if looks_like_path else spec)
            if repeats is not None:
                profile = profile.replace(repeats=repeats)
            out[profile.name] = make_measurer(profile)
        except (MeasurementError, ConfigError) as exc:
            if explicit:
                raise
            warn(f"not measuring on {spec}: {exc}")
    return out


@dataclass(frozen=True)
class DeviceTable:
    """What a device's latency table says about timing: its protocol and its speed reference."""

    protocol: Any                       # hwnas.latency.measure.TimingProtocol
    reference: dict[str, Any] | None    # {"arch", "ms", "table"} or None
    table: Any = None                   # the hwnas.latency.table.LatencyTable itself, for predictions
    path: str | None = None             # where it was read from


def device_tables(space: Any, devices: Sequence[str], tables: dict[str, str] | None,
                  base: Path | None) -> dict[str, DeviceTable]:
    """Device -> the protocol and speed reference of its table (the run's table, else the one
    ``hwnas profile`` writes by default); devices without a table get the default protocol. The
    speed reference comes from an FP32 table only: an INT8 table's was timed as a quantised graph."""
    from hwnas.latency.device import load_device_profile
    from hwnas.latency.measure import TimingProtocol
    from hwnas.latency.table import LatencyTable
    from hwnas.paths import default_table_path

    out = {}
    for device in devices:
        path = (tables or {}).get(device)
        try:
            slug = load_device_profile(device).slug
        except (ConfigError, MeasurementError):
            slug = device
        out[device] = DeviceTable(TimingProtocol(), None)
        for candidate in ([resolve_path(path, base)] if path else []) + [default_table_path(slug, space.name)]:
            try:
                table = LatencyTable.load(candidate, space)
            except HwnasError:
                continue
            meta, reference = table.meta, table.meta.get("reference")
            if table.precision != "fp32":  # its reference was timed quantised; export times the FP32 reference
                out[device] = DeviceTable(TimingProtocol.of_table(meta), None, table, str(candidate))
                continue  # the device's FP32 table, if there is one, has the reference export can time
            out[device] = DeviceTable(TimingProtocol.of_table(meta),
                                      {**reference, "table": str(candidate)} if reference else None,
                                      table, str(candidate))
            break
    return out


# ----------------------------------------------------------------------------------- one model

def int8_path(path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    return path.with_name(path.name[:-5] + ".int8.onnx" if path.name.endswith(".onnx") else path.name + ".int8")


def export_one(source: Source, arch: Any, path: Path, name: str, measurers: dict[str, Any],
               settings: ExportSettings, predicted: FrontRecord | None = None,
               picked_for: Sequence[str] = (), tables: dict[str, DeviceTable] | None = None) -> Any:
    """Recalibrate, export, verify, evaluate (and quantise) one model -> ModelResult; torch-cuda devices
    time it now, ONNX Runtime devices later in :func:`measure_together`.

    An :class:`HwnasError` while exporting or verifying marks the model failed (the file removed);
    the caller carries on with the next model.
    """
    from hwnas.export.onnx_export import check_parity, export_subnet, model_metadata, onnx_accuracy
    from hwnas.export.report import ModelFile, ModelResult
    from hwnas.families import macs_and_params
    from hwnas.supernet.calibration import recalibrate_bn

    space, data = source.net.space, source.dataset
    mean, std = source.normalization
    macs, params = macs_and_params(space, arch)
    result = ModelResult(name=name, arch=arch.to_dict(), macs=macs, params=params,
                         predicted_accuracy=predicted.accuracy if predicted else None,
                         predicted_latency_ms=dict(predicted.latency_ms) if predicted else {},
                         picked_for=list(picked_for), precision=predicted.precision if predicted else "fp32")
    add_table_predictions(result, arch, tables or {})
    subnet = source.net.extract(arch).to(settings.torch_device)
    if source.calib is not None:
        recalibrate_bn(subnet, source.calib, arch.resolution, mean, std, device=settings.torch_device)
    subnet = subnet.cpu().eval()
    meta = model_metadata(arch, space, predicted=predicted.to_dict()["predicted"] if predicted else {},
                          supernet_sha256=source.sha256, mean=mean, std=std,
                          class_names=data.class_names if data is not None else None,
                          supernet=Path(source.label).name, dataset=data.name if data is not None else None,
                          bn_calibration_images=len(source.calib) if source.calib is not None else 0)
    try:
        export_subnet(subnet, arch, path, batch=settings.batch, opset=settings.resolved_opset, metadata=meta,
                      exporter=settings.exporter)
        inputs, kind = parity_inputs(source, settings, arch)
        max_abs, max_rel = check_parity(path, subnet, inputs)
    except HwnasError as exc:
        result.status, result.error = "failed", str(exc)
        return result
    result.parity = {"max_abs": max_abs, "max_rel": max_rel, "images": len(inputs), "inputs": kind}
    accuracy = (onnx_accuracy(path, source.test, arch.resolution, mean, std) if source.test is not None else None)
    result.fp32 = ModelFile(path=str(path), size_bytes=path.stat().st_size, accuracy=accuracy)
    _measure_module(result.fp32, _one_at_a_time(measurers), subnet, space.in_channels, arch.resolution,
                    settings.batch, tables or {})
    if settings.int8 or result.precision == "int8":  # a model searched at INT8 is deployed quantised
        try:
            result.int8 = _int8(source, path, arch)
        except HwnasError as exc:  # the verified FP32 model stays; the run still reports the failure
            result.status, result.error = "failed", f"INT8: {exc}"
    return result


def add_table_predictions(result: Any, arch: Any, tables: dict[str, DeviceTable]) -> None:
    """Predicted latency on the measured devices the search did not predict for, from each device's
    latency table, so every measurement has its prediction beside it (a front searched on one CPU,
    exported and timed on a GPU whose table was profiled later). Recorded with where it came from."""
    for device, table in tables.items():
        if device in result.predicted_latency_ms or table.table is None:
            continue
        if (table.table.precision == "int8") != (result.precision == "int8"):  # fp16 GPU tables time FP32 models
            continue
        try:
            result.predicted_latency_ms[device] = float(table.table.predict(arch))
        except HwnasError:  # e.g. a resolution the table was not profiled at: no prediction, said so
            continue
        result.predicted_latency_source[device] = f"latency table {table.path}"


def parity_inputs(source: Source, settings: ExportSettings, arch: Any) -> tuple[Any, str]:
    """The parity check's inputs and what they are: the first test images when the export reads data,
    else seeded standard-normal inputs (what normalised images look like to the network)."""
    from hwnas.export.onnx_export import prepared_images

    mean, std = source.normalization
    if source.dataset is not None:
        return prepared_images(source.dataset.test, settings.parity_images, arch.resolution, mean, std), "test images"
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    shape = (settings.parity_images, source.net.space.in_channels, arch.resolution, arch.resolution)
    return torch.randn(shape, generator=generator), "random inputs"


def _int8(source: Source, path: Path, arch: Any) -> Any:
    from hwnas.export.onnx_export import onnx_accuracy
    from hwnas.export.quantize import quantize_int8
    from hwnas.export.report import ModelFile

    mean, std = source.normalization
    q_path = quantize_int8(path, int8_path(path), source.int8_calib, resolution=arch.resolution, mean=mean, std=std)
    accuracy = onnx_accuracy(q_path, source.test, arch.resolution, mean, std) if source.test else None
    return ModelFile(path=str(q_path), size_bytes=q_path.stat().st_size, accuracy=accuracy)


def _one_at_a_time(measurers: dict[str, Any]) -> dict[str, Any]:
    """Measurers that time the PyTorch module as each model is exported (torch-cuda, as their tables
    do); ONNX Runtime ones (local or an agent) wait for :func:`measure_together`."""
    return {d: m for d, m in measurers.items() if not hasattr(m, "measure_interleaved")}


def _measure_module(record: Any, measurers: dict[str, Any], subnet: Any, channels: int, resolution: int,
                    batch: int | None, tables: dict[str, DeviceTable]) -> None:
    """Time the BN-folded module on torch-cuda devices, summarised by the table's statistic."""
    from hwnas.export.bn_fold import fold_batchnorm
    from hwnas.latency.measure import TimingProtocol

    for device, measurer in measurers.items():
        protocol = tables.get(device, DeviceTable(TimingProtocol(), None)).protocol
        shape = (batch or measurer.profile.batch_size, channels, resolution, resolution)
        try:
            stats = measurer.measure_module(fold_batchnorm(subnet), shape)
        except MeasurementError as exc:
            record.skipped[device] = str(exc)
            _stderr_warning(f"{Path(record.path).name} not measured on {device}: {exc}")
            continue
        ms = stats.value(protocol.statistic)
        record.latency[device] = {**stats.to_dict(), "ms": ms, "statistic": protocol.statistic}


def measure_together(results: Sequence[Any], measurers: dict[str, Any], space: Any, batch: int | None,
                     tables: dict[str, DeviceTable], progress: bool = True, warn: Warn = _stderr_warning) -> None:
    """Time every exported file (FP32 and INT8) on each ONNX Runtime device (local or an agent) together,
    in interleaved passes with the protocol its latency table was profiled with, so predicted and
    measured compare fairly. The table's speed reference is timed in every group of the same passes:
    the ratio of its latency now to its latency at profiling time says how much faster or slower the
    machine runs today (shared machines drift), and ``ms_at_profile_speed`` divides it out. INT8 files
    are not timed on torch-cuda devices (their tables time PyTorch modules)."""
    from hwnas.families import architecture_from_dict
    from hwnas.latency.block_models import reference_graph
    from hwnas.latency.measure import TimingProtocol, single_torch_thread, time_models

    files = [(f, r.arch["resolution"]) for r in results for f in (r.fp32, r.int8) if f is not None]
    for device, measurer in measurers.items():
        if not files:
            continue
        if not hasattr(measurer, "measure_interleaved"):
            for r in results:
                if r.int8 is not None:
                    r.int8.skipped[device] = "INT8 ONNX models are not timed on torch-cuda profiles"
            continue
        table = tables.get(device) or DeviceTable(TimingProtocol(), None)
        size = batch or measurer.profile.batch_size
        models = [(Path(f.path).read_bytes(), (size, space.in_channels, res, res)) for f, res in files]
        ref = table.reference
        reference = reference_graph(space, architecture_from_dict(ref["arch"], space), size) if ref else None
        try:
            with single_torch_thread():
                stats = time_models(measurer, models, progress=_pass_bar(device, measurer.profile.repeats, progress),
                                    protocol=table.protocol, reference=reference)
        except MeasurementError as exc:
            warn(f"models not measured on {device}: {exc}")
            for f, _ in files:
                f.skipped[device] = str(exc)
            continue
        _record_latencies([f for f, _ in files], device, stats, table.protocol.statistic, ref)


def _record_latencies(files: Sequence[Any], device: str, stats: list[Any], statistic: str,
                      reference: dict[str, Any] | None) -> None:
    speed = None
    if reference is not None:
        now = stats[-1].value(statistic)
        speed = {"reference_ms_now": now, "reference_ms_profiled": float(reference["ms"]),
                 "slowdown": now / float(reference["ms"]), "table": reference["table"]}
    for f, st in zip(files, stats):
        ms = st.value(statistic)
        f.latency[device] = {**st.to_dict(), "ms": ms, "statistic": statistic}
        if speed is not None:
            f.latency[device].update(speed=speed, ms_at_profile_speed=ms / speed["slowdown"])


def _pass_bar(device: str, passes: int, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    from hwnas.latency.measure import MIN_MEASURE_SECONDS

    desc = f"measuring on {device} (then more passes until {MIN_MEASURE_SECONDS:g} s)"
    return lambda items: tqdm(items, desc=desc, total=passes, unit="pass", dynamic_ncols=True)


# ----------------------------------------------------------------------------------- output folders

def check_out_file(out: Path, overwrite: bool, int8: bool) -> None:
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; with --arch give a file name such as {out / 'model.onnx'}")
    if out.suffix != ".onnx":
        raise ConfigError(f"--out {out} should end in .onnx (with --arch it names the model file)")
    targets = [out] + ([int8_path(out)] if int8 else [])
    existing = [t for t in targets if t.exists() and t.stat().st_size > 0]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} already exists; choose another --out or pass --overwrite")


def prepare_out_dir(out: Path, overwrite: bool) -> Path:
    """``out/models`` ready for new files; a non-empty ``out`` needs ``overwrite`` (only our files go)."""
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


# ----------------------------------------------------------------------------------- search runs

@dataclass(frozen=True)
class RunFolder:
    """A finished search: its folder, ``config.json`` and front records."""

    path: Path
    config: dict[str, Any]
    front: list[FrontRecord]


@dataclass(frozen=True)
class Chosen:
    """One model to export: its file name stem, its record and which of the search's picks it is."""

    name: str
    record: FrontRecord
    picked_for: tuple[str, ...] = ()


def read_run(run_dir: Path) -> RunFolder:
    """``config.json`` and ``front.json`` of a search run; :class:`ConfigError` names what is wrong."""
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist; pass the --out folder of `hwnas search`")
    path = run_dir / "config.json"
    config = read_json(path, "search config", f"{run_dir} is not a finished `hwnas search` run; rerun the search")
    if not isinstance(config, dict) or "supernet" not in config or "space" not in config:
        raise ConfigError(f"{path} lacks 'supernet' or 'space'; it was not written by `hwnas search`")
    front = read_front(run_dir / "front.json")
    if not front:
        raise ConfigError(f"{run_dir / 'front.json'} holds no models; the search found no feasible network")
    return RunFolder(run_dir, config, front)


def primary_device(run: RunFolder) -> str | None:
    """The device --pick N spreads along: the run's first device, as named in the predictions (None
    for a run searched without latency: MACs/params only)."""
    names = list(run.front[0].latency_ms) if run.front else []
    if not names:
        return None
    for spec in run.config.get("devices") or []:
        for name in (str(spec), Path(str(spec)).stem):  # a profile name, or a table path's device
            if name in names:
                return name
    return names[0]


def choose_models(run: RunFolder, pick: str, warn: Warn = _stderr_warning) -> list[Chosen]:
    """The models --pick all | budget | N selects, ordered by latency on the primary device (by MACs
    when the run has no latency).

    ``budget`` exports exactly the search's picks (``picks.json``: one per device and budget),
    each distinct architecture once, named after its front position when it is on the front.
    """
    primary = primary_device(run)
    by_latency = sorted(range(len(run.front)), key=lambda i: run.front[i].macs if primary is None
                        else run.front[i].latency_ms.get(primary, float("inf")))
    if pick == "all":
        return [Chosen(f"front{i:03d}", run.front[i]) for i in by_latency]
    if pick == "budget":
        return _chosen_picks(run, warn)
    try:
        n = int(pick)
    except ValueError:
        raise ConfigError(f"--pick {pick!r}: use all, budget or a number of models") from None
    if n < 1:
        raise ConfigError(f"--pick {n}: pick at least one model")
    if n < len(by_latency):
        import numpy as np

        by_latency = [by_latency[s] for s in np.unique(np.round(np.linspace(0, len(by_latency) - 1, n)).astype(int))]
    return [Chosen(f"front{i:03d}", run.front[i]) for i in by_latency]


def _chosen_picks(run: RunFolder, warn: Warn) -> list[Chosen]:
    chosen: list[Chosen] = []
    for pick in read_picks(run.path / "picks.json"):
        label = f"{pick.device} <= {pick.budget_ms:g} ms"
        if pick.record is None:
            warn(f"no evaluated model met {label}; nothing to export for it")
            continue
        same = next((k for k, c in enumerate(chosen) if c.record.same_model(pick.record)), None)
        if same is not None:
            chosen[same] = Chosen(chosen[same].name, chosen[same].record, chosen[same].picked_for + (label,))
            continue
        on_front = next((i for i, r in enumerate(run.front) if r.same_model(pick.record)), None)
        name = f"front{on_front:03d}" if on_front is not None else f"eval{pick.eval_index or 0:06d}"
        if on_front is None and pick.record.precision != "fp32":  # eval indices of each precision's own search
            name += f"-{pick.record.precision}"
        chosen.append(Chosen(name, pick.record, (label,)))
    if not chosen:
        raise ConfigError(f"{run.path / 'picks.json'}: no evaluated model met any budget; rerun the search with "
                          "a larger --budget-ms, or export with --pick all")
    return chosen


@dataclass
class ExportOutcome:
    """What an export run produced: one result per model and the report files."""

    results: list[Any]
    devices: list[str]
    models_dir: Path
    report: dict[str, Path]

    @property
    def failed(self) -> list[Any]:
        return [r for r in self.results if r.status != "ok"]


def export_run(run_dir: str | Path, settings: ExportSettings, warn: Warn = _stderr_warning) -> ExportOutcome:
    """Export the models ``settings.pick`` chooses from a search run into ``settings.out``."""
    import hwnas
    from hwnas.export.report import write_report
    from hwnas.families import architecture_from_dict

    run = read_run(Path(run_dir))
    chosen = choose_models(run, settings.pick, warn)
    models_dir = prepare_out_dir(settings.out, settings.overwrite)
    supernet = settings.supernet or run.config.get("supernet")
    if supernet is None:
        raise ConfigError(f"{run.path / 'config.json'} names no supernet (the search ran on --space "
                          f"{run.config['space']}); pass --supernet PATH, or --supernet {run.config['space']} "
                          "--weights FILE for once-for-all's published weights")
    int8_chosen = any(c.record.precision == "int8" for c in chosen)  # INT8 calibration images needed
    source = load_source(str(supernet), settings.replace(int8=settings.int8 or int8_chosen), base=run.path, warn=warn)
    space = source.net.space
    if space.name != run.config["space"]:
        raise ConfigError(f"the supernet is for space {space.name!r} but the run searched "
                          f"{run.config['space']!r}; pass the run's supernet with --supernet")
    explicit = settings.measure is not None
    devices = [] if settings.no_measure else list(settings.measure if explicit else run.config.get("devices") or [])
    measurers = make_measurers([str(d) for d in devices], settings.repeats, explicit, run.path, warn)
    tables = device_tables(space, list(measurers), run.config.get("latency_tables"), run.path)
    results = []
    to_train = trained_names(chosen, settings.train_top)
    for c in _progress(chosen, settings.progress):
        try:
            arch = architecture_from_dict(dict(c.record.arch), space)
        except ArchitectureError as exc:
            raise ArchitectureError(f"{c.name}: {exc}") from None
        model_source, trained = _model_source(source, arch, settings if c.name in to_train else
                                              settings.replace(finetune_epochs=0, retrain_epochs=0), c.name)
        results.append(export_one(model_source, arch, models_dir / f"{c.name}.onnx", c.name, measurers, settings,
                                  predicted=c.record, picked_for=c.picked_for, tables=tables))
        results[-1].trained = trained
    measure_together(results, measurers, space, settings.batch, tables, progress=settings.progress, warn=warn)
    context = {"run": str(run.path), "supernet": source.label, "supernet sha256": source.sha256,
               "space": f"{space.name} ({space.fingerprint()})",
               "data": source.dataset.summary() if source.dataset is not None else "none (parity on random inputs)",
               "BN calibration images": len(source.calib) if source.calib is not None else "0 (supernet statistics kept)",
               "accuracy images": len(source.test) if source.test is not None else 0,
               "exporter": f"{settings.exporter}, opset {settings.resolved_opset}, batch {settings.batch or 'dynamic'}",
               "pick": settings.pick, "hwnas": hwnas.__version__}
    which = "each model" if settings.train_top is None else \
        f"the {settings.train_top} most accurate (predicted) model{'s' if settings.train_top > 1 else ''}"
    if settings.finetune_epochs:
        context["fine-tuning"] = (f"{settings.finetune_epochs} epochs for {which} from the supernet's weights, lr "
                                  f"{settings.finetune_lr}, distilled from its largest subnet ({settings.out / 'finetune'})")
    if settings.retrain_epochs:
        context["retraining"] = (f"{settings.retrain_epochs} epochs for {which} from scratch, hwnas train "
                                 f"--fixed-arch's recipe, seed {settings.seed} ({settings.out / 'retrain'})")
    report = write_report(settings.out, results, list(measurers), context)
    return ExportOutcome(results, list(measurers), models_dir, report)


def trained_names(chosen: Sequence[Chosen], top: int | None) -> set[str]:
    """The models to fine-tune or retrain: all (``top`` None) or the ``top`` of highest predicted accuracy
    (ties: the slower model, as the search would rank it, then the name)."""
    if top is None:
        return {c.name for c in chosen}
    ranked = sorted(chosen, key=lambda c: (-(c.record.accuracy if c.record.accuracy is not None else -1.0),
                                           -max(c.record.latency_ms.values(), default=0.0), c.name))
    return {c.name for c in ranked[:top]}


def _model_source(source: Source, arch: Any, settings: ExportSettings, name: str) -> tuple[Source, dict | None]:
    """The source a model is cut from -- the supernet itself, or a copy in which the subnet was fine-tuned
    (--finetune-epochs) or retrained (--retrain-epochs) -- and that training's record. The training runs
    beside the exported files (``finetune/<name>/`` or ``retrain/<name>/`` in a run's --out,
    ``<model>.finetune/`` or ``<model>.retrain/`` beside an --arch file), so a rerun with --overwrite
    resumes it."""
    from hwnas.export.subnet_training import OPTION_NAME, trained_source, training_mode, training_record

    mode = training_mode(settings)
    if mode is None:
        return source, None
    kind = OPTION_NAME[mode]
    folder = settings.out.with_suffix(f".{kind}") if settings.out.suffix == ".onnx" else settings.out / kind / name
    return trained_source(source, arch, settings, folder, progress=settings.progress), training_record(folder)


def _progress(items: Sequence[Chosen], progress: bool) -> Any:
    from tqdm import tqdm

    bar = tqdm(items, desc="export", unit="model", disable=not progress)
    for item in bar:
        bar.set_postfix_str(item.name)
        yield item


def export_architecture(arch_file: Path, settings: ExportSettings) -> Any:
    """Export one architecture file to ``settings.out`` (an .onnx path) -> ModelResult."""
    if settings.pick != "all":
        raise ConfigError("--pick applies to a RUN_DIR, not to --arch")
    if settings.supernet is None:
        raise ConfigError(f"--arch needs --supernet (a checkpoint path, or {OFA_SUPERNET} with --weights)")
    check_out_file(settings.out, settings.overwrite, settings.int8)
    source = load_source(settings.supernet, settings)
    arch = load_arch_file(arch_file, source.net.space)
    devices = [] if settings.no_measure else list(settings.measure or [])
    measurers = make_measurers(devices, settings.repeats, explicit=True, base=None)
    tables = device_tables(source.net.space, list(measurers), None, None)
    model_source, trained = _model_source(source, arch, settings, settings.out.stem)
    result = export_one(model_source, arch, settings.out, settings.out.stem, measurers, settings, tables=tables)
    result.trained = trained
    measure_together([result], measurers, source.net.space, settings.batch, tables, progress=False)
    return result
