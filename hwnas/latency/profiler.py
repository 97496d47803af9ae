"""Build a latency table for one (space, device): measure every entry, calibrate, validate, report.

Steps, each checkpointed to ``<space>.partial.jsonl`` next to the table so an interrupted run
resumes where it stopped (measurements are the slow part; nothing measured is measured twice):

1. every distinct block/stem/head of the space is exported as its own ONNX graph and timed (each
   structure is exported once and moved to the other resolutions' input shapes where that is exact,
   :class:`hwnas.latency.block_models.EntryGraphs`);
2. ``calibrate`` random subnets are exported whole and timed, and a small linear correction of the
   LUT sum is fitted on them (model chosen by leave-one-out error);
3. ``validate`` *other* random subnets are timed end to end and compared with the plain sum and
   the calibrated prediction (RMSE, MAPE, Spearman, share within +-5% / +-10%).

The table JSON replaces the partial file atomically; a JSON + Markdown report lies next to it.

``ProfileOptions(precision="int8")`` runs the same steps on INT8 graphs: each block and each whole
subnet is statically quantised (:func:`hwnas.latency.block_models.quantize_for_latency`, the export
path's quantiser) before it is timed, so the block sum is calibrated and validated on quantised
subnets. The table is ``<space>.int8.json`` beside the FP32 ``<space>.json``, with its own report and
checkpoint; the report adds the FP32/INT8 speed ratio per entry type when the FP32 table exists.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from hwnas import __version__
from hwnas.arch import Architecture
from hwnas.atomic_io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from hwnas.errors import ConfigError
from hwnas.families import gene_layout, sample_architecture
from hwnas.latency.device import DeviceProfile, load_device_profile
from hwnas.latency.measure import (INTERLEAVE_BURST, LATENCY_STATISTIC, LatencyStats, Measurer, TimingProtocol,
                                  make_measurer, single_torch_thread, time_models)
from hwnas.latency.table import (LatencyTable, TableEntry, check_resolutions, enumerate_entries,
                                 fit_correction, precision_speed_ratios, reference_architecture, table_path)
from hwnas.metrics import prediction_agreement
from hwnas.paths import TABLE_PRECISIONS, TABLES_DIR
from hwnas.space import AnySpace, SearchSpace, get_space

DEFAULT_CALIBRATE = 60
DEFAULT_VALIDATE = 50
DEFAULT_ROUNDS = 2
STATISTICS = ("median", "min")
FAST_WARMUP, FAST_REPEATS, FAST_CALIBRATE, FAST_VALIDATE = 3, 10, 30, 20


@dataclass(frozen=True)
class ProfileOptions:
    """What ``hwnas profile`` does beyond the device profile's own protocol."""

    resolutions: tuple[int, ...] | None = None  # None = every resolution of the space
    calibrate: int | None = None  # None = DEFAULT_CALIBRATE (FAST_CALIBRATE with fast)
    validate: int | None = None  # None = DEFAULT_VALIDATE (FAST_VALIDATE with fast)
    seed: int = 0
    fast: bool = False  # fewer repeats and subnets, for the quickstart
    force: bool = False  # re-measure everything, ignoring a finished table and checkpoints
    rounds: int | None = None  # passes over all graphs; each graph keeps its best (lowest-statistic) pass
    statistic: str = LATENCY_STATISTIC  # per-graph latency: "min" over repeats (robust on a shared, drifting CPU) or "median"
    interleave: bool = True  # local ONNX Runtime: time all graphs in shared round-robin passes (drift cancels)
    burst: int = INTERLEAVE_BURST  # interleaved: back-to-back runs per graph per pass, the fastest kept
    precision: str = "fp32"  # "int8": every graph (entries and whole subnets) ONNX Runtime static-quantised (QDQ)
    build_workers: int | None = None  # processes exporting whole subnets; None: graph_pool.default_workers; 1: none

    @property
    def n_rounds(self) -> int:
        return self.rounds if self.rounds is not None else (1 if self.fast else DEFAULT_ROUNDS)

    @property
    def n_calibrate(self) -> int:
        return self.calibrate if self.calibrate is not None else (FAST_CALIBRATE if self.fast else DEFAULT_CALIBRATE)

    @property
    def n_validate(self) -> int:
        return self.validate if self.validate is not None else (FAST_VALIDATE if self.fast else DEFAULT_VALIDATE)


@dataclass
class ProfileResult:
    table: LatencyTable
    table_path: Path
    report: dict[str, Any]
    report_paths: tuple[Path, Path]
    reused: bool = False  # an up-to-date table existed and nothing was measured
    measured: dict[str, int] = field(default_factory=dict)  # new measurements this run, per kind


# ------------------------------------------------------------------------------------- metrics

accuracy_metrics = prediction_agreement  # the name this module's callers and experiments use


def sample_distinct(space: AnySpace, n: int, seed: Sequence[int], resolutions: Sequence[int],
                    exclude: set[Any] = frozenset()) -> list[Any]:
    """``n`` distinct random subnets of any family (canonical form: inactive blocks do not make two
    archs differ)."""
    rng = np.random.default_rng(list(seed))
    layout = gene_layout(space)
    out: list[Any] = []
    seen = set(exclude)
    for _ in range(1000 * max(n, 1)):
        if len(out) == n:
            break
        arch = sample_architecture(space, rng, resolution=int(rng.choice(resolutions)))
        arch = layout.decode(layout.canonicalize(layout.encode(arch)))[0]
        if arch not in seen:
            seen.add(arch)
            out.append(arch)
    return out


# ------------------------------------------------------------------------------------- profiler

# Graphs at least this large go to disk while a profile builds and times (see Profiler._build_graphs):
# block graphs stay in memory, whole ImageNet-size subnets (tens of MB each) do not.
SPILL_BYTES = 4 << 20


def _spilled(graph: tuple[Any, tuple[int, ...]], spill: Path | None, index: int) -> tuple[Any, tuple[int, ...]]:
    """``graph`` with ONNX bytes of :data:`SPILL_BYTES` or more written to ``spill`` and replaced by the path."""
    model, shape = graph
    if spill is None or not isinstance(model, (bytes, bytearray)) or len(model) < SPILL_BYTES:
        return graph
    path = spill / f"{index}.onnx"
    path.write_bytes(model)
    return path, shape


class Profiler:
    """Measures a :class:`LatencyTable` for ``space`` on ``profile`` and writes it under ``out_dir``."""

    def __init__(self, space: SearchSpace | str, profile: DeviceProfile | str | Path,
                 out_dir: str | Path = TABLES_DIR, options: ProfileOptions | None = None,
                 measurer: Measurer | None = None, progress: bool = True) -> None:
        self.space = get_space(space)
        self.options = options or ProfileOptions()
        profile = load_device_profile(profile)
        if self.options.fast:
            profile = profile.replace(warmup=min(profile.warmup, FAST_WARMUP),
                                      repeats=min(profile.repeats, FAST_REPEATS))
        self.profile = profile
        self.resolutions = check_resolutions(self.space, self.options.resolutions)
        if self.options.n_calibrate < 0 or self.options.n_validate < 0 or self.options.n_rounds < 1 \
                or self.options.burst < 1 \
                or (self.options.build_workers is not None and self.options.build_workers < 1):
            raise ConfigError("--calibrate and --validate must be >= 0, --rounds, --burst and --build-workers >= 1")
        if self.options.statistic not in STATISTICS:
            raise ConfigError(f"unknown latency statistic {self.options.statistic!r}; "
                              f"choose from {', '.join(STATISTICS)}")
        _check_precision(self.options.precision, profile)
        self.measurer = measurer or make_measurer(profile)
        self.progress = progress
        self.path = table_path(out_dir, profile.slug, self.space, self.options.precision)
        self.fp32_path = table_path(out_dir, profile.slug, self.space)  # the INT8 report compares with it
        stem = self.path.name.removesuffix(".json")
        self.partial_path = self.path.with_name(f"{stem}.partial.jsonl")
        self.report_paths = (self.path.with_name(f"{stem}.report.json"), self.path.with_name(f"{stem}.report.md"))
        self._supernet = None
        self._entry_graphs: Any = None  # EntryGraphs: one export per block structure, moved to other resolutions
        self._measured = {"entry": 0, "calibration": 0, "validation": 0, "reference": 0}
        self.group_speeds: list[float] = []  # per interleaved group, relative to the fastest (drift between groups)
        self.passes: dict[str, int] = {}  # interleaved passes timed now / reused from an interrupted run

    # --------------------------------------------------------------------------- identity
    @property
    def int8(self) -> bool:
        return self.options.precision == "int8"

    def protocol(self) -> dict[str, Any]:
        """How every number of the table was measured; a finished table is reused only when it matches.
        FP32 protocols are unchanged by the precision option, so existing tables stay reusable."""
        protocol = self._base_protocol()
        if self.int8:
            from hwnas.export.quantize import precision_label

            protocol["precision"] = "int8"
            protocol["quantization"] = (f"onnxruntime quantize_static, {precision_label()}, activation ranges from "
                                        "seeded random inputs (hwnas.latency.block_models.quantize_for_latency)")
        return protocol

    def _base_protocol(self) -> dict[str, Any]:
        p = self.profile
        return {"warmup": p.warmup, "repeats": p.repeats, "batch_size": p.batch_size, "threads": p.threads,
                "pin_cores": list(p.pin_cores) if p.pin_cores else None, "precision": p.precision,
                "statistic": (f"{self.options.statistic} over {p.repeats} interleaved round-robin passes through all "
                              f"graphs (each pass: fastest of {self.options.burst} back-to-back runs)"
                              if self.interleaved else
                              f"{self.options.statistic} of repeats after warm-up; lowest over rounds"),
                "rounds": None if self.interleaved else self.options.n_rounds,
                "interleaved": self.interleaved,
                "resolutions": list(self.resolutions), "calibrate": self.options.n_calibrate,
                "validate": self.options.n_validate, "seed": self.options.seed, "fast": self.options.fast,
                "export": ("torch module, eval mode, BatchNorm folded as exported (timed by the torch-cuda measurer)"
                           if p.backend == "torch-cuda"
                           else "torch.onnx.export (TorchScript), opset 17, eval mode, BN folded, fixed input shape")}

    def _header(self) -> dict[str, Any]:
        """What makes checkpointed measurements reusable: same space, device protocol, export."""
        return {"type": "header", "space_fingerprint": self.space.fingerprint(),
                "device": self.profile.to_dict(), "hwnas_version": __version__,
                **({"precision": self.options.precision} if self.int8 else {})}

    # --------------------------------------------------------------------------- run
    def run(self) -> ProfileResult:
        existing = self._reusable_table()
        if existing is not None:
            return existing
        with single_torch_thread():
            return self._run()

    def _run(self) -> ProfileResult:
        records = self._open_checkpoint()
        started = time.perf_counter()
        entries = enumerate_entries(self.space, self.resolutions)
        calib_archs = sample_distinct(self.space, self.options.n_calibrate, (self.options.seed, 1), self.resolutions)
        valid_archs = sample_distinct(self.space, self.options.n_validate, (self.options.seed, 2), self.resolutions,
                                      exclude=set(calib_archs))
        reference = reference_architecture(self.space, self.resolutions)
        jobs = ([_Job("entry", e.key, self._at_precision(lambda e=e: self._entry_graph(e), e.key)) for e in entries]
                + [_Job(kind, json.dumps(a.to_dict()),
                        self._at_precision(lambda a=a: self._subnet_graph(a), f"{kind} subnet"), a)
                   for kind, archs in (("calibration", calib_archs), ("validation", valid_archs)) for a in archs]
                + [_Job("reference", json.dumps(reference.to_dict()),
                        self._at_precision(self._reference_graph, "reference"))])
        results = self._measure(jobs, records)

        table = LatencyTable(self.space, {e.key: {"kind": e.kind, "input_shape": list(e.input_shape),
                                                  **results[("entry", e.key)]} for e in entries},
                             resolutions=self.resolutions)
        calib = [results[("calibration", json.dumps(a.to_dict()))] for a in calib_archs]
        valid = [results[("validation", json.dumps(a.to_dict()))] for a in valid_archs]
        table, calibration = self._calibrate(table, calib_archs, calib)
        validation = self._validate(table, valid_archs, valid)
        seconds = {kind: float(sum(r["seconds"] for key, r in results.items() if key[0] == kind))
                   for kind in ("entry", "calibration", "validation")}
        seconds["entries"] = seconds.pop("entry")
        seconds["profile_total"] = seconds["entries"] + seconds["calibration"]
        seconds["this_run_wall"] = time.perf_counter() - started
        # a resumed run's seconds cover only what it timed itself: the passes say how much came before
        seconds.update({f"passes_{k}": v for k, v in self.passes.items()})
        meta = {"device": self.profile.to_dict(), "runtime": self.measurer.describe(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "protocol": self.protocol(), "hwnas_version": __version__, "seconds": seconds,
                "validation": {k: validation[k] for k in ("lut_sum", "calibrated")},
                "interleaved_group_slowdowns": self.group_speeds or None,
                "graphs_built": self._graphs_built(),
                "reference": {"arch": reference.to_dict(), "ms": results[("reference", json.dumps(reference.to_dict()))]["ms"],
                              "why": "machine-speed canary: re-measured beside exported models (hwnas export)"}}
        table = LatencyTable(self.space, table.entries, meta, table.correction, calibration, self.resolutions)
        report = build_report(table, validation, self._fp32_table())
        table.save(self.path)
        self._write_report(report)
        if self.partial_path.exists():
            os.unlink(self.partial_path)  # the finished table supersedes the checkpoint
        return ProfileResult(table, self.path, report, self.report_paths, measured=dict(self._measured))

    def _reusable_table(self) -> ProfileResult | None:
        """A finished table with the same space, device and protocol is kept unless ``force``."""
        if self.options.force or not self.path.is_file() or not self.report_paths[0].is_file():
            return None
        try:
            table = LatencyTable.load(self.path, self.space)
        except Exception:  # unreadable or for another space: measure afresh
            return None
        if table.meta.get("device") != self.profile.to_dict() or table.meta.get("protocol") != self.protocol():
            return None
        report = json.loads(self.report_paths[0].read_text(encoding="utf-8"))
        fp32 = self._fp32_table()
        compared = (report.get("speedup_vs_fp32") or {}).get("fp32_table_created")
        if fp32 is not None and compared != fp32.meta.get("created"):
            report = build_report(table, report["validation"], fp32)  # an FP32 table profiled since: compare now
            self._write_report(report)
        return ProfileResult(table, self.path, report, self.report_paths, reused=True)

    def _open_checkpoint(self) -> list[dict[str, Any]]:
        if self.options.force and self.partial_path.exists():
            os.unlink(self.partial_path)
        records = read_jsonl(self.partial_path)
        header = self._header()
        if records and records[0] != header:
            print(f"note: {self.partial_path} was made with another device profile or space; starting afresh")
            os.unlink(self.partial_path)
            records = []
        if not records:
            append_jsonl(self.partial_path, header)
        return records

    # --------------------------------------------------------------------------- measuring
    def _measure(self, jobs: list["_Job"], records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        if self.interleaved:
            return self._measure_interleaved(jobs, records)
        return self._measure_rounds(jobs, records)

    @property
    def interleaved(self) -> bool:
        """ONNX Runtime, local or on an agent, can hold every graph's session open and cycle through
        them (see :meth:`OnnxRuntimeMeasurer.measure_interleaved`); torch-cuda times one module at a
        time, in rounds (CUDA events on a GPU do not drift like a shared CPU)."""
        return self.options.interleave and hasattr(self.measurer, "measure_interleaved") \
            and self.profile.backend in ("onnxruntime", "remote")

    def _measure_interleaved(self, jobs: list["_Job"],
                             records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Every entry and subnet timed in the same round-robin passes by :func:`time_models`, the
        timing path of export and ``--validate-front``, with the protocol this table records.

        Graphs whose total size exceeds what the measurer holds at once (``max_interleaved_bytes``:
        memory locally, the upload limit of a remote agent) are split into balanced groups, each
        also timing the speed reference (the last job), and every group's samples are scaled to
        the speed of the fastest group, so drift between groups (seconds apart) cancels as well.
        Each finished pass of a group is appended to the checkpoint; a resumed run rebuilds the
        graphs and continues with the next pass (passes are only reused for the same group of jobs).
        """
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="hwnas-profile-") as spill:
            graphs = self._build_graphs(jobs, Path(spill))
            export_s = time.perf_counter() - t0
            protocol = TimingProtocol.of_table({"protocol": self.protocol()})
            log = _CheckpointLog(self.partial_path, jobs, records)
            t1 = time.perf_counter()
            stats = time_models(self.measurer, graphs[:-1], self._pass_bar(self.profile.repeats), min_seconds=0.0,
                                protocol=protocol, reference=graphs[-1], log=log)
            time_s = time.perf_counter() - t1
        self.group_speeds = stats.group_slowdowns
        self.passes = {"timed_this_run": log.added, "reused_from_checkpoint": log.reused}
        for job in jobs:
            self._measured[job.kind] += int(log.added > 0)
        per_ms = np.array([st.mean_ms * st.repeats for st in stats])
        share = per_ms / max(per_ms.sum(), 1e-12)
        return {(job.kind, job.id): {"ms": st.value(protocol.statistic), **st.to_dict(),
                                     "round_medians_ms": [st.median_ms],
                                     "seconds": float(export_s / len(jobs) + time_s * share[j])}
                for j, (job, st) in enumerate(zip(jobs, stats))}

    def _build_graphs(self, jobs: list["_Job"], spill: Path | None = None) -> list[tuple[Any, tuple[int, ...]]]:
        """Every job's graph, in order. Whole subnets go to worker processes
        (:mod:`hwnas.latency.graph_pool`) while this process builds the entries' graphs, when there
        are enough of them to pay the workers' start-up; else all are built here. With a ``spill``
        folder, graphs of :data:`SPILL_BYTES` or more are written there and kept as paths: 160
        ofa-resnet50 subnets held as bytes took 17 GB of this 24 GB machine (2026-12-04), and timing
        needs only one memory-bounded group at a time (:func:`~hwnas.latency.measure.time_models`)."""
        from hwnas.latency.graph_pool import SubnetGraphPool, default_workers

        pooled = [i for i, job in enumerate(jobs) if job.arch is not None]
        workers = self.options.build_workers or default_workers(len(pooled))
        if workers <= 1:
            pooled = []
        bar = self._count_bar("building graphs", len(jobs))
        graphs: list[Any] = [None] * len(jobs)
        with (SubnetGraphPool(self.space, self.profile.batch_size, self.int8, workers) if pooled
              else contextlib.nullcontext()) as pool:
            futures = {i: pool.submit(jobs[i].arch) for i in pooled}
            for i, job in enumerate(jobs):
                if i not in futures:
                    graphs[i] = _spilled(job.build(), spill, i)
                    bar.update()
            for i, future in futures.items():
                graphs[i] = _spilled(future.result(), spill, i)
                bar.update()
        bar.close()
        return graphs

    def _count_bar(self, desc: str, total: int) -> Any:
        """A progress bar updated by hand (a silent stand-in without progress)."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"{desc} ({self.profile.name})", unit="graph", dynamic_ncols=True,
                    disable=not self.progress)

    def _pass_bar(self, passes: int) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return lambda items: tqdm(items, desc=f"timing interleaved passes ({self.profile.name})", total=passes,
                                  initial=passes - len(items), unit="pass", dynamic_ncols=True)

    def _measure_rounds(self, jobs: list["_Job"],
                        records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Time every graph ``rounds`` times, one pass over all graphs per round; keep each graph's best round.

        Spreading a graph's rounds over the whole run, and doing the same for blocks and whole subnets,
        keeps a burst of load from another process from biasing one graph (min over round medians).
        """
        done = {(r["type"], r["id"], r["round"]): r for r in records if r["type"] != "header"}
        cache: dict[tuple[str, str], tuple[bytes, tuple[int, ...]]] = {}
        rounds = self.options.n_rounds
        for rnd in range(rounds):
            todo = [j for j in jobs if (j.kind, j.id, rnd) not in done]
            desc = "profiling" if rounds == 1 else f"round {rnd + 1}/{rounds}"
            for job in self._bar(todo, desc, len(jobs), len(jobs) - len(todo)):
                t0 = time.perf_counter()
                graph = cache.get((job.kind, job.id)) or job.build()
                if rnd + 1 < rounds:
                    cache[(job.kind, job.id)] = graph
                stats = self._time(*graph)
                record = {"type": job.kind, "id": job.id, "round": rnd, "stats": stats.to_dict(),
                          "seconds": time.perf_counter() - t0}
                append_jsonl(self.partial_path, record)
                self._measured[job.kind] += 1
                done[(job.kind, job.id, rnd)] = record
        results = {}
        stat = f"{self.options.statistic}_ms"
        for job in jobs:
            tries = [done[(job.kind, job.id, rnd)] for rnd in range(rounds)]
            best = min(tries, key=lambda r: r["stats"][stat])
            results[(job.kind, job.id)] = {"ms": best["stats"][stat], **best["stats"],
                                           "round_medians_ms": [r["stats"]["median_ms"] for r in tries],
                                           "seconds": sum(r["seconds"] for r in tries)}
        return results

    def _time(self, graph: Any, shape: tuple[int, ...]) -> LatencyStats:
        """torch-cuda profiles time the torch module itself (CUDA graphs, fp16) with its BatchNorms folded
        into the convs, as ``hwnas export`` deploys and times it (unfolded, the BN kernels made whole
        fmnist-mbv3 subnets about 35 % slower on an H200 at batch 1); others time its ONNX export."""
        if self.profile.backend == "torch-cuda" and hasattr(self.measurer, "measure_module"):
            from hwnas.export.bn_fold import fold_batchnorm

            return self.measurer.measure_module(fold_batchnorm(graph), shape)
        return self.measurer.measure_onnx(graph, shape)

    def _at_precision(self, build: Callable[[], tuple[Any, tuple[int, ...]]],
                      name: str) -> Callable[[], tuple[Any, tuple[int, ...]]]:
        """``build`` as is for FP32; for INT8, its ONNX graph quantised as a deployed INT8 model is."""
        if not self.int8:
            return build

        def quantized() -> tuple[bytes, tuple[int, ...]]:
            from hwnas.latency.block_models import quantize_for_latency

            graph, shape = build()
            return quantize_for_latency(graph, shape, name), shape

        return quantized

    def _fp32_table(self) -> LatencyTable | None:
        """The same device's FP32 table beside an INT8 one (for the speed ratios), if there is a readable one."""
        if not self.int8 or not self.fp32_path.is_file():
            return None
        try:
            return LatencyTable.load(self.fp32_path, self.space)
        except Exception as exc:  # a stale or broken FP32 table only costs the comparison
            print(f"note: {self.fp32_path} not compared with the INT8 table ({exc})")
            return None

    def _entry_graph(self, entry: TableEntry) -> tuple[Any, tuple[int, ...]]:
        """The entry as ONNX bytes (or a torch module for torch-cuda) and its input shape."""
        from hwnas.latency.block_models import EntryGraphs, entry_module

        shape = (self.profile.batch_size, *entry.input_shape)
        if self.profile.backend == "torch-cuda":
            return entry_module(self.space, entry, self._get_supernet), shape
        if self._entry_graphs is None:
            self._entry_graphs = EntryGraphs(self.space, self._get_supernet)
        return self._entry_graphs.graph(entry, shape), shape

    def _subnet_graph(self, arch: Architecture) -> tuple[Any, tuple[int, ...]]:
        from hwnas.latency.block_models import subnet_onnx

        if self.profile.backend != "torch-cuda":
            return subnet_onnx(self._get_supernet(), arch, self.profile.batch_size)
        shape = (self.profile.batch_size, self.space.in_channels, arch.resolution, arch.resolution)
        return self._get_supernet().extract(arch).eval(), shape

    def _reference_graph(self) -> tuple[Any, tuple[int, ...]]:
        from hwnas.latency.block_models import reference_graph

        if self.profile.backend == "torch-cuda":
            return self._subnet_graph(reference_architecture(self.space, self.resolutions))
        return reference_graph(self.space, reference_architecture(self.space, self.resolutions),
                               self.profile.batch_size)

    def _graphs_built(self) -> dict[str, Any] | None:
        """How this run built the entries' graphs: exports vs exports moved to another resolution."""
        if self._entry_graphs is None:
            return None
        return {"entries_exported": self._entry_graphs.exported, "entries_moved": self._entry_graphs.moved,
                "why": "one export per block structure, moved to the other resolutions where exact "
                       "(hwnas.latency.onnx_reshape)"}

    def _get_supernet(self) -> Any:
        if self._supernet is None:
            from hwnas.supernet.network import build_supernet

            self._supernet = build_supernet(self.space).eval()
        return self._supernet

    def _bar(self, items: list, desc: str, total: int, initial: int) -> Any:
        if not self.progress:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=f"{desc} ({self.profile.name})", total=total, initial=initial,
                    unit="graph", dynamic_ncols=True)

    # --------------------------------------------------------------------------- calibration
    def _calibrate(self, table: LatencyTable, archs: list[Architecture],
                   records: list[dict]) -> tuple[LatencyTable, dict[str, Any]]:
        points = [_point(table, a, r) for a, r in zip(archs, records)]
        if not archs:
            return table, {"model": "identity", "candidates": {}, "points": []}
        genes = table.layout.encode(archs)
        measured = np.array([p["measured_ms"] for p in points])
        correction, candidates = fit_correction(table.features(genes), measured,
                                                accept=lambda c: table.with_correction(c).min_latency_ms() > 0)
        table = table.with_correction(correction)
        predicted = table.predict_genes(genes)
        for p, v in zip(points, predicted):
            p["predicted_ms"] = float(v)
        return table, {"model": correction.model, "candidates": candidates, "points": points,
                       "fit": {"lut_sum": accuracy_metrics([p["lut_sum_ms"] for p in points], measured),
                               "calibrated": accuracy_metrics(predicted, measured)}}

    def _validate(self, table: LatencyTable, archs: list[Architecture], records: list[dict]) -> dict[str, Any]:
        points = [_point(table, a, r) for a, r in zip(archs, records)]
        for p, a in zip(points, archs):
            p["predicted_ms"] = table.predict(a)
        measured = [p["measured_ms"] for p in points]
        return {"lut_sum": accuracy_metrics([p["lut_sum_ms"] for p in points], measured),
                "calibrated": accuracy_metrics([p["predicted_ms"] for p in points], measured),
                "points": points}

    def _write_report(self, report: dict[str, Any]) -> None:
        atomic_write_json(self.report_paths[0], report)
        atomic_write_text(self.report_paths[1], render_markdown(report))


def _jobs_hash(jobs: Sequence["_Job"]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(f"{j.kind}:{j.id}" for j in jobs).encode()).hexdigest()[:16]


class _CheckpointLog:
    """The interleaved passes in the checkpoint (:class:`hwnas.latency.measure.PassLog`): each pass
    is keyed by the hash of its group's jobs, so passes are reused only for the same group."""

    def __init__(self, path: Path, jobs: Sequence["_Job"], records: list[dict[str, Any]]) -> None:
        self.path, self.jobs, self.records, self.added, self.reused = path, jobs, records, 0, 0

    def _key(self, members: Sequence[int]) -> str:
        return _jobs_hash([self.jobs[i] for i in members])

    def done(self, members: Sequence[int]) -> list[list[float]]:
        key = self._key(members)
        passes = [r["ms"] for r in self.records if r.get("type") == "pass" and r.get("jobs") == key
                  and len(r.get("ms", ())) == len(members)]
        self.reused += len(passes)
        return passes

    def add(self, members: Sequence[int], row: np.ndarray) -> None:
        append_jsonl(self.path, {"type": "pass", "jobs": self._key(members), "ms": [float(v) for v in row]})
        self.added += 1


def _resumed_note(seconds: dict[str, Any]) -> str:
    """Says that the times above cover only part of the timing when the run resumed an interrupted one."""
    reused = seconds.get("passes_reused_from_checkpoint", 0)
    if not reused:
        return ""
    return (f" (this run resumed an interrupted one: {reused} of {reused + seconds.get('passes_timed_this_run', 0)} "
            "interleaved passes came from its checkpoint, so these times leave out the earlier run's)")


def _check_precision(precision: str, profile: DeviceProfile) -> None:
    if precision not in TABLE_PRECISIONS:
        raise ConfigError(f"unknown table precision {precision!r}; choose from {', '.join(TABLE_PRECISIONS)}")
    if precision == "int8" and (profile.backend not in ("onnxruntime", "remote") or profile.precision != "fp32"):
        raise ConfigError(f"--precision int8 quantises ONNX graphs for ONNX Runtime; device {profile.name!r} "
                          f"(backend {profile.backend}, precision {profile.precision}) does not run them; use an "
                          "onnxruntime or remote device profile with precision fp32")


@dataclass(frozen=True)
class _Job:
    """One graph to time: its record type, a stable id (entry key or architecture JSON), its builder."""

    kind: str
    id: str
    build: Callable[[], tuple[bytes, tuple[int, ...]]]
    arch: Architecture | None = None  # whole calibration/validation subnets: a worker process can build them


def _point(table: LatencyTable, arch: Architecture, result: dict[str, Any]) -> dict[str, Any]:
    stats = LatencyStats.from_dict(result)
    return {"arch": arch.to_dict(), "measured_ms": result["ms"], "median_ms": stats.median_ms, "p10_ms": stats.p10_ms,
            "p90_ms": stats.p90_ms, "round_medians_ms": result["round_medians_ms"], "lut_sum_ms": table.lut_sum(arch)}


# ------------------------------------------------------------------------------------- report

def build_report(table: LatencyTable, validation: dict[str, Any],
                 fp32: LatencyTable | None = None) -> dict[str, Any]:
    """The validation report of ``table``; with ``fp32`` (the same device's FP32 table beside an INT8
    one), also the FP32/INT8 speed ratio per entry type."""
    meta, cal = table.meta, table.calibration
    spreads = [(e["p90_ms"] - e["p10_ms"]) / e["median_ms"] for e in table.entries.values() if e["median_ms"] > 0]
    report = {
        "space": {"name": table.space.name, "fingerprint": table.space.fingerprint()},
        "precision": table.precision, "device": meta.get("device"), "runtime": meta.get("runtime"),
        "created": meta.get("created"),
        "protocol": meta.get("protocol"), "hwnas_version": meta.get("hwnas_version"),
        "seconds": meta.get("seconds"), "entries": len(table.entries),
        "entry_spread_p10_p90_pct_median": float(100 * np.median(spreads)) if spreads else None,
        "min_latency_ms": table.min_latency_ms(), "min_latency_lut_sum_ms": table.min_latency_ms(calibrated=False),
        "correction": table.correction.to_dict(), "calibration_candidates": cal.get("candidates", {}),
        "calibration_fit": cal.get("fit", {}), "validation": validation,
    }
    if fp32 is not None:
        report["speedup_vs_fp32"] = {
            "fp32_table_created": fp32.meta.get("created"), "ratios": precision_speed_ratios(table, fp32),
            "why": "FP32 ms / INT8 ms per entry type, both tables' entries (> 1: INT8 faster); tables "
                   "measured at different times also carry the machine's drift between them"}
    if (meta.get("protocol") or {}).get("fast"):
        v = validation.get("calibrated") or {}
        report["note"] = (f"fast mode (repeats {meta['protocol']['repeats']}, {meta['protocol']['calibrate']} "
                          f"calibration subnets): measured accuracy on {v.get('n', 0)} held-out subnets is "
                          f"MAPE {v.get('mape_pct', float('nan')):.1f}%, {v.get('within10_pct', float('nan')):.0f}% "
                          "within +-10%; run without --fast for the full protocol")
    return report


def metrics_table(report: dict[str, Any]) -> str:
    """Validation metrics, plain LUT sum vs calibrated, as a Markdown table."""
    v = report.get("validation", {})
    rows = [("predictor", "n", "RMSE ms", "MAPE %", "Spearman", "within 5 %", "within 10 %", "bias %"),
            ("---",) * 8]
    for name, label in (("lut_sum", "plain LUT sum"), ("calibrated", f"calibrated ({report['correction']['model']})")):
        m = v.get(name) or {}
        if m:
            rows.append((label, str(m["n"]), f"{m['rmse_ms']:.4f}", f"{m['mape_pct']:.2f}", f"{m['spearman']:.3f}",
                         f"{m['within5_pct']:.0f}", f"{m['within10_pct']:.0f}", f"{m['bias_pct']:+.2f}"))
    if len(rows) == 2:
        return "(no validation subnets measured; pass --validate N)"
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def render_markdown(report: dict[str, Any]) -> str:
    dev, rt, proto, sec = (report.get(k) or {} for k in ("device", "runtime", "protocol", "seconds"))
    cands = report.get("calibration_candidates", {})
    rounds_note = "" if proto.get("interleaved") else f"; best of {proto.get('rounds')} round(s)"
    precision = report.get("precision", "fp32")
    lines = [
        f"# Latency table: {report['space']['name']} on {dev.get('name')}"
        f"{'' if precision == 'fp32' else f' ({precision.upper()})'}", "",
        f"- space fingerprint: `{report['space']['fingerprint']}`",
        f"- device: {dev.get('description') or dev.get('name')} (backend {dev.get('backend')}, "
        f"provider {dev.get('provider')}, threads {dev.get('threads')}, batch {dev.get('batch_size')})",
        f"- hardware/runtime: {rt.get('cpu_model') or rt.get('gpu_name') or '?'}; onnxruntime "
        f"{rt.get('onnxruntime_version')}; created {report.get('created')}; hwnas {report.get('hwnas_version')}",
        f"- protocol: warm-up {proto.get('warmup')}, {proto.get('repeats')} timed repeats; {proto.get('statistic')}; "
        f"resolutions {proto.get('resolutions')}; {proto.get('calibrate')} calibration / "
        f"{proto.get('validate')} validation subnets (seed {proto.get('seed')})"
        f"{rounds_note}{'; FAST mode' if proto.get('fast') else ''}",
        f"- entries: {report.get('entries')} (median p10-p90 spread "
        f"{report.get('entry_spread_p10_p90_pct_median') or 0:.1f}% of the median); profiling time {sec.get('profile_total', 0):.1f} s "
        f"(entries {sec.get('entries', 0):.1f} s + calibration {sec.get('calibration', 0):.1f} s), "
        f"validation {sec.get('validation', 0):.1f} s{_resumed_note(sec)}",
        f"- fastest subnet: {report.get('min_latency_ms', 0):.4f} ms calibrated "
        f"({report.get('min_latency_lut_sum_ms', 0):.4f} ms plain sum)", "",
        "## Validation on held-out random subnets (measured end to end)", "", metrics_table(report), "",
        "## Calibration", "",
        f"Chosen model: `{report['correction']['model']}` = {_formula(report['correction'])}", "",
        "| model | params | LOO RMSE ms | LOO MAPE % |", "| --- | --- | --- | --- |",
        *[f"| {m} | {c['params']} | {c['loo_rmse_ms']:.4f} | {100 * c['loo_mape']:.2f} |" if "params" in c
          else f"| {m} | - | rejected: {c.get('rejected', '?')} | - |" for m, c in cands.items()],
    ]
    if report.get("speedup_vs_fp32"):
        lines += ["", *speedup_lines(report["speedup_vs_fp32"])]
    if report.get("note"):
        lines += ["", f"Note: {report['note']}"]
    return "\n".join(lines) + "\n"


def speedup_lines(speedup: dict[str, Any]) -> list[str]:
    """The INT8 report's FP32/INT8 speed-ratio table, as Markdown lines."""
    return ["## INT8 speed-up over FP32 per entry type", "",
            f"FP32 ms / INT8 ms of the same entries (FP32 table of {speedup.get('fp32_table_created')}); "
            "> 1: INT8 faster.", "",
            "| entry type | entries | median | min | max |", "| --- | --- | --- | --- | --- |",
            *[f"| {r['type']} | {r['n']} | {r['median']:.2f} | {r['min']:.2f} | {r['max']:.2f} |"
              for r in speedup["ratios"]]]


def _formula(corr: dict[str, Any]) -> str:
    terms = [f"{c:.4g}*{f}" for f, c in zip(corr["features"], corr["coef"])]
    return " + ".join(terms + [f"{corr['intercept']:.4g}"])


__all__ = ["ProfileOptions", "ProfileResult", "Profiler", "accuracy_metrics", "build_report", "metrics_table",
           "render_markdown", "sample_distinct", "speedup_lines"]
