"""Measure subnet accuracies for predictor training: sample, extract, recalibrate BN, evaluate.

Every record is appended atomically to ``<out>/dataset.jsonl`` as soon as it is measured, so an
interrupted collection loses at most one subnet, and a rerun skips subnets already present
(matched on the canonical architecture: inactive slots do not make a subnet new). A torn last
line left by a crash is dropped before appending resumes.

``<out>/dataset.meta.json`` records the supernet's sha256 and the evaluation protocol (data set,
validation/calibration sizes and seeds). Accuracies measured on another checkpoint or with
another protocol are not comparable, so appending to such a data set is refused.

Which subnets: the smallest and the largest, then uniformly random subnets whose resolutions
cycle through the space's resolutions in shuffled rounds (equal share per resolution, at any
``n``). The sequence is a fixed function of the seed, so ``--n 3000`` after ``--n 1000`` extends
the same set.

Speed on a CPU: subnets are evaluated in channels-last layout under ``torch.inference_mode`` with
batches of 1000, BN folded, on images prepared once and features of the shared stem and first
block computed once per resolution (:class:`SubnetEvaluator`); experiments/collect_speed.py
measures subnets/s against the plain whole-network path.

INT8 (``precision="int8"``, ``hwnas collect --precision int8``): each subnet, BN-recalibrated exactly
as for its FP32 label, is also exported to ONNX (BN folded, dynamic batch), statically quantised by
the one quantiser of :mod:`hwnas.export.quantize` (QDQ, per-channel) with ranges from one fixed set
of training images (the same for every subnet), and evaluated with ONNX Runtime, one call per batch,
on the FP32 label's validation images. The record keeps both labels (``accuracy`` and
``accuracy_int8``); the meta file records the precision, so FP32 and INT8 data sets never mix.
By default an INT8 data set lives in ``predictors/<space>/int8/``.

Distributed: under ``torchrun`` rank r measures architectures ``r::world`` into
``dataset.rank{r}.jsonl``; rank 0 merges the shards into ``dataset.jsonl`` at the end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

import numpy as np

from hwnas.atomic_io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from hwnas.encoding import GeneLayoutBase
from hwnas.families import (AnyArchitecture, architecture_from_dict, gene_layout, largest_architecture,
                            smallest_architecture)
from hwnas.errors import ConfigError, DataError
from hwnas.paths import check_precision
from hwnas.space import SearchSpace, get_space

DATASET_FILE = "dataset.jsonl"
META_FILE = "dataset.meta.json"
FORMAT = "hwnas-accuracy-dataset-v1"
#: Fields of the noise protocol (``--repeat-calibration``): the label with other calibration images,
#: and the label's two validation halves (read by :mod:`hwnas.accuracy.label_noise`).
REPEAT_FIELD = "accuracy_2"
HALF_FIELDS = ("accuracy_half1", "accuracy_half2")
#: Fields of an INT8 collection: the quantised model's accuracy and loss beside the FP32 ones.
INT8_FIELD, INT8_LOSS_FIELD = "accuracy_int8", "loss_int8"
T = TypeVar("T")


@dataclass
class CollectConfig:
    """One collection job (the CLI flags of ``hwnas collect``)."""

    supernet: str
    n: int
    out: str | None = None          # default predictors/<space>/
    val_images: int = 2000          # fixed subset of the validation split (0 = all of it)
    calib_images: int = 500         # fixed subset of the training split for BN recalibration
    seed: int = 0                   # architecture sampling
    calib_seed: int = 0
    repeat_calibration: bool = False  # also measure with calib_seed + 1 -> accuracy_2, and record the
                                      # accuracy of each validation half -> accuracy_half1/2 (noise ceiling)
    proxy_images: int = 0           # > 0: also record proxy_loss on that many calibration images
    batch_size: int = 1000
    device: str = "auto"
    threads: int = 0                # torch CPU threads (0 = torch's default)
    dataset: str | None = None      # default: the data set the supernet was trained on
    val_size: int | None = None     # default: the supernet's hold-out size (same validation split)
    data_seed: int | None = None    # default: the supernet's training seed (same validation split)
    precision: str = "fp32"         # "int8": also quantise each subnet and record accuracy_int8
    int8_calib_images: int = 300    # fixed training images for INT8 activation ranges (as hwnas export's)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"--n must be at least 1 subnet, got {self.n}")
        if self.val_images < 0 or self.calib_images < 1:
            raise ConfigError("--val-images must be >= 0 (0 = whole split) and --calib-images >= 1")
        if not 0 <= self.proxy_images <= self.calib_images:
            raise ConfigError(f"--proxy-images must be in 0..--calib-images ({self.calib_images}), "
                              f"got {self.proxy_images}")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be positive")
        check_precision(self.precision)
        if self.int8_calib_images < 1:
            raise ConfigError(f"--int8-calib-images must be a positive image count, got {self.int8_calib_images}")
        if self.precision == "int8" and self.repeat_calibration:
            raise ConfigError("--repeat-calibration measures the FP32 label's noise; run it without "
                              "--precision int8 (into its own --out)")


# --------------------------------------------------------------------------------- architectures

def collection_architectures(space: SearchSpace | str, n: int, seed: int = 0) -> list[AnyArchitecture]:
    """The first ``n`` of a seeded stream: smallest, largest, then random subnets with resolutions in
    shuffled rounds. Canonical duplicates are skipped, so all ``n`` are distinct networks."""
    space = get_space(space)
    rng = np.random.default_rng(seed)
    layout = gene_layout(space)
    archs = [smallest_architecture(space), largest_architecture(space)][:n]
    seen = {arch_key(a, space) for a in archs}
    resolutions = np.asarray(space.resolutions)
    tries = 0
    while len(archs) < n:
        for res in rng.permutation(resolutions):
            for _ in range(100):  # redraw a duplicate (only likely in a tiny space)
                genes = layout.random(1, rng)
                genes[0, layout.resolution_gene] = space.resolutions.index(int(res))
                arch = layout.decode(genes)[0]
                tries += 1
                key = arch_key(arch, space)
                if key not in seen:
                    seen.add(key)
                    archs.append(arch)
                    break
            if len(archs) == n:
                break
        if tries > 100 * n + 1000:
            raise ConfigError(f"space {space.name!r} has fewer than {n} distinct subnets; lower --n")
    return archs


def arch_key(arch: AnyArchitecture, space: SearchSpace | str) -> str:
    """Identity of the network an architecture describes (inactive slots ignored)."""
    space = get_space(space)
    if hasattr(arch, "canonical"):  # mbconv: the key format of every shipped data set
        return json.dumps(arch.canonical(space).to_dict(), separators=(",", ":"))
    layout = gene_layout(space)
    canonical = layout.decode(layout.canonicalize(layout.encode([arch])))[0]
    return json.dumps(canonical.to_dict(), separators=(",", ":"))


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """The items rank ``rank`` of ``world`` processes takes: ``items[rank::world]``."""
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"rank {rank} is not valid for world size {world}")
    return list(items[rank::world])


# --------------------------------------------------------------------------------- data set files

def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a data set file; a torn last line (interrupted append) is ignored."""
    try:
        return read_jsonl(path)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is corrupt in the middle (line {exc.lineno}): {exc.msg}; "
                        "remove the bad line or collect into a new --out") from None


def repair_tail(path: Path) -> list[dict[str, Any]]:
    """Read ``path`` and, if its last line is torn, rewrite it without that line (atomically), so
    the next append starts on a fresh line instead of gluing onto the fragment."""
    records = read_records(path)
    if path.exists():
        text = path.read_text(encoding="utf-8")
        lines = sum(1 for line in text.splitlines() if line.strip())
        if (text and not text.endswith("\n")) or len(records) != lines:
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


def merge_shards(out_dir: str | Path, space: SearchSpace | str) -> int:
    """Fold every ``dataset.rank*.jsonl`` of ``out_dir`` into ``dataset.jsonl`` (de-duplicated by
    architecture), then delete the shards. Returns the number of records added."""
    out_dir = Path(out_dir)
    main = out_dir / DATASET_FILE
    records = read_records(main)
    keys = {arch_key(architecture_from_dict(r["arch"], space), space) for r in records}
    added = 0
    shards = sorted(out_dir.glob("dataset.rank*.jsonl"))
    for path in shards:
        for rec in read_records(path):
            key = arch_key(architecture_from_dict(rec["arch"], space), space)
            if key not in keys:
                keys.add(key)
                records.append(rec)
                added += 1
    if added or shards:
        atomic_write_text(main, "".join(json.dumps(r) + "\n" for r in records))
    for path in shards:
        path.unlink()
    return added


def _protocol(config: CollectConfig, sha256: str, space: SearchSpace, data: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "supernet_sha256": sha256, "space": space.name,
            "space_fingerprint": space.fingerprint(), **data,
            "val_images": config.val_images, "calib_images": config.calib_images,
            "calib_seed": config.calib_seed,
            **({"proxy_images": config.proxy_images} if config.proxy_images else {}),
            **(_int8_protocol(config) if config.precision == "int8" else {})}


def _int8_protocol(config: CollectConfig) -> dict[str, Any]:
    """What makes INT8 labels comparable: the quantiser's settings and its calibration images.
    (An FP32 data set's meta has no ``precision`` key, so those written before INT8 still match.)"""
    from hwnas.export.quantize import precision_label

    return {"precision": "int8", "quantization": precision_label(), "int8_calib_images": config.int8_calib_images,
            "int8_calib_seed": int8_calib_seed(config)}


def int8_calib_seed(config: CollectConfig) -> int:
    """Seed of the INT8 calibration subset: another draw than the BN calibration's, as in ``hwnas export``."""
    return config.calib_seed + 1


def check_or_write_meta(out_dir: Path, meta: dict[str, Any], supernet: str) -> None:
    """Write the sidecar for a new data set; refuse a data set made from another checkpoint/protocol."""
    path = out_dir / META_FILE
    if not path.exists():
        if (out_dir / DATASET_FILE).exists() and read_records(out_dir / DATASET_FILE):
            raise DataError(f"{out_dir / DATASET_FILE} has records but no {META_FILE}, so the checkpoint "
                            "it was measured on is unknown; collect into a new --out")
        atomic_write_json(path, {**meta, "supernet": str(supernet)})
        return
    old = json.loads(path.read_text())
    if old.get("supernet_sha256") != meta["supernet_sha256"]:
        raise DataError(f"{out_dir / DATASET_FILE} was collected from another supernet checkpoint "
                        f"({old.get('supernet', '?')}, sha256 {str(old.get('supernet_sha256'))[:12]}...), "
                        f"not {supernet} (sha256 {meta['supernet_sha256'][:12]}...); accuracies of "
                        "different checkpoints must not be mixed: pass a new --out")
    changed = [k for k in meta if k != "supernet" and old.get(k) != meta[k]]
    if changed:
        raise DataError(f"{out_dir / DATASET_FILE} was collected with a different protocol "
                        f"({', '.join(f'{k}={old.get(k)!r} now {meta[k]!r}' for k in changed)}); rerun with the "
                        "original settings or pass a new --out")


# --------------------------------------------------------------------------------- measuring

class SubnetEvaluator:
    """Extract -> recalibrate BN -> evaluate, with fixed calibration and validation images.

    Work every subnet shares is done once per resolution and cached: the calibration and validation
    images are normalised, resized and laid out channels-last once, and pushed through the fixed
    stem and first block once (every subnet shares those layers, and their recalibrated statistics
    depend on the calibration images alone). Each subnet then recalibrates only its own layers on
    the cached features, each calibration batch normalised by its own statistics exactly as in a
    whole-network recalibration, and is evaluated with BN folded into the convolutions.

    With ``precision="int8"`` the same recalibrated subnet (the shared layers given the cached
    statistics) is exported, quantised with ranges from one fixed calibration set and evaluated by
    ONNX Runtime (:meth:`int8_labels`); the calibration and validation images are prepared once per
    resolution as numpy batches for that too.
    """

    def __init__(self, net: Any, dataset: Any, config: CollectConfig, device: Any) -> None:
        from hwnas.data import calibration_subset

        self.net, self.dataset, self.config, self.device = net, dataset, config, device
        val = dataset.val
        self.val = calibration_subset(val, config.val_images, seed=config.calib_seed) if config.val_images else val
        self.calib = [calibration_subset(dataset.train, config.calib_images, seed=config.calib_seed + i)
                      for i in range(2 if config.repeat_calibration else 1)]
        self._features: dict[tuple[int, int], Any] = {}
        self._proxy: dict[int, list[tuple[Any, Any]]] = {}  # per resolution, from the first calibration set
        self._prefix_state: dict[int, dict[str, Any]] = {}  # per resolution: the shared layers' recalibrated BN
        self._onnx_inputs: dict[int, tuple[list[Any], list[tuple[Any, Any]]]] = {}  # per resolution (INT8)
        self.int8_calib = (calibration_subset(dataset.train, config.int8_calib_images, seed=int8_calib_seed(config))
                           if config.precision == "int8" else None)

    def _shared_features(self, resolution: int, calib_index: int) -> tuple[list[Any], list[tuple[Any, Any]]]:
        """Calibration batches and validation batches after the stem and the first block."""
        key = (resolution, calib_index)
        if key not in self._features:  # all kept: collection cycles through the resolutions
            self._features[key] = self._compute_shared(resolution, self.calib[calib_index])
        return self._features[key]

    def _compute_shared(self, resolution: int, calib: Any) -> tuple[list[Any], list[tuple[Any, Any]]]:
        import torch

        from hwnas.data import calibration_subset
        from hwnas.supernet.calibration import batch_norms, iterate, recalibrate_bn_on

        ds, cfg = self.dataset, self.config
        sub = self.net.extract(smallest_architecture(self.net.space)).to(self.device)
        prefix = sub.split_shared()[0].to(memory_format=torch.channels_last)

        def prepared(split: Any, batch_size: int) -> list[tuple[Any, Any]]:
            return [(x.contiguous(memory_format=torch.channels_last), y)
                    for x, y in iterate(split, resolution, ds.mean, ds.std, batch_size, self.device)]

        calib_batches = [x for x, _ in prepared(calib, min(cfg.batch_size, 500))]
        with torch.inference_mode():
            recalibrate_bn_on(prefix, calib_batches)
            for bn in batch_norms(prefix):  # what the rest of a subnet sees during its own recalibration
                bn.train()
            calib_out = [prefix(x) for x in calib_batches]
            prefix.eval()
            val_out = [(prefix(x), y) for x, y in prepared(self.val, cfg.batch_size)]
            if cfg.proxy_images and calib is self.calib[0]:  # training images only: no validation image used
                proxy_split = calibration_subset(calib, cfg.proxy_images, seed=cfg.calib_seed)
                self._proxy[resolution] = [(prefix(x), y) for x, y in prepared(proxy_split, cfg.batch_size)]
        if calib is self.calib[0]:  # what a whole exported subnet's shared layers hold (INT8 labels)
            self._prefix_state[resolution] = {k: v.detach().clone() for k, v in prefix.state_dict().items()}
        return calib_out, val_out

    def measure(self, arch: AnyArchitecture) -> dict[str, Any]:
        import torch

        from hwnas.accuracy.features import count_macs_params
        from hwnas.export.bn_fold import fold_batchnorm
        from hwnas.supernet.calibration import evaluate_on, recalibrate_bn_on

        start = time.perf_counter()
        res = arch.resolution
        sub = self.net.extract(arch).to(self.device).to(memory_format=torch.channels_last)
        macs, params = count_macs_params(sub, (1, self.net.space.in_channels, res, res))
        rest = sub.split_shared()[1]
        record: dict[str, Any] = {}
        with torch.inference_mode():
            for i in range(len(self.calib)):
                calib_out, val_out = self._shared_features(res, i)
                recalibrate_bn_on(rest, calib_out)
                folded = fold_batchnorm(rest)
                suffix = "" if i == 0 else f"_{i + 1}"
                if self.config.repeat_calibration and i == 0:  # noise protocol: also each validation half
                    acc, loss, halves = _evaluate_halves(folded, val_out)
                    record.update(halves)
                else:
                    acc, loss = evaluate_on(folded, val_out)
                if i == 0 and self.config.proxy_images:  # training-free signal a predictor may use
                    record["proxy_loss"] = round(evaluate_on(folded, self._proxy[res])[1], 6)
                record[f"accuracy{suffix}"], record[f"loss{suffix}"] = round(acc, 6), round(loss, 6)
        if self.config.precision == "int8":  # rest holds the first calibration's statistics (no repeat)
            acc, loss = self.int8_labels(sub, arch)
            record[INT8_FIELD], record[INT8_LOSS_FIELD] = round(acc, 6), round(loss, 6)
        record.update(macs=macs, params=params, seconds=round(time.perf_counter() - start, 3))
        return record

    def deployable_onnx(self, sub: Any, arch: AnyArchitecture) -> bytes:
        """The FP32 ONNX model (BN folded, dynamic batch) of ``sub`` whose own layers were just
        recalibrated: the shared stem and first block get the cached statistics, so the model is
        exactly the network the FP32 label measured."""
        import torch

        from hwnas.export.bn_fold import fold_batchnorm
        from hwnas.export.onnx_export import to_onnx

        self._shared_features(arch.resolution, 0)
        sub.split_shared()[0].load_state_dict(self._prefix_state[arch.resolution])
        folded = fold_batchnorm(sub).cpu().to(memory_format=torch.contiguous_format)
        shape = (self.net.space.in_channels, arch.resolution, arch.resolution)
        return to_onnx(folded, shape).SerializeToString()

    def int8_labels(self, sub: Any, arch: AnyArchitecture) -> tuple[float, float]:
        """Accuracy and loss of ``sub`` statically quantised (the one ORT quantiser, fixed calibration
        images), evaluated by ONNX Runtime on the FP32 label's validation images."""
        from hwnas.export.onnx_export import onnx_evaluate_on
        from hwnas.export.quantize import quantize_graph

        calib, val = self._int8_inputs(arch.resolution)
        int8 = quantize_graph(self.deployable_onnx(sub, arch), calib, name=f"subnet {arch.to_json()}",
                              fix="collect this subnet at --precision fp32, or report the failing architecture")
        return onnx_evaluate_on(int8, val, self.config.threads)

    def _int8_inputs(self, resolution: int) -> tuple[list[Any], list[tuple[Any, Any]]]:
        """INT8 calibration batches and validation ``(x, y)`` batches as numpy, once per resolution."""
        if resolution not in self._onnx_inputs:
            from hwnas.export.quantize import calibration_batches
            from hwnas.supernet.calibration import iterate

            ds = self.dataset
            calib = calibration_batches(self.int8_calib, resolution, ds.mean, ds.std)
            val = [(x.numpy(), y.numpy()) for x, y in iterate(self.val, resolution, ds.mean, ds.std,
                                                                  self.config.batch_size)]
            self._onnx_inputs[resolution] = calib, val
        return self._onnx_inputs[resolution]


def split_halves(batches: Sequence[tuple[Any, Any]]) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
    """Prepared ``(x, y)`` batches cut into the first and the second half of their images (equal
    sizes up to one image), without copying: the two validation halves of the noise protocol."""
    total = sum(len(y) for _, y in batches)
    first, second, seen = [], [], 0
    for x, y in batches:
        cut = min(max(total // 2 - seen, 0), len(y))
        if cut:
            first.append((x[:cut], y[:cut]))
        if cut < len(y):
            second.append((x[cut:], y[cut:]))
        seen += len(y)
    return first, second


def _evaluate_halves(model: Any, batches: Sequence[tuple[Any, Any]]) -> tuple[float, float, dict[str, float]]:
    """Accuracy and loss on all ``batches`` plus the accuracy of each half (no extra compute: the
    whole-set numbers are the size-weighted means of the halves')."""
    from hwnas.supernet.calibration import evaluate_on

    parts = split_halves(batches)
    sizes = [sum(len(y) for _, y in part) for part in parts]
    results = [evaluate_on(model, part) for part in parts]
    total = sum(sizes)
    acc = sum(n * a for n, (a, _) in zip(sizes, results)) / total
    loss = sum(n * l for n, (_, l) in zip(sizes, results)) / total
    return acc, loss, {f: round(a, 6) for f, (a, _) in zip(HALF_FIELDS, results)}


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        if "LOCAL_RANK" in os.environ and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available; use --device cpu")
    return torch.device(name)


def _dataset_options(config: CollectConfig, extra: dict[str, Any]) -> dict[str, Any]:
    """The data set and validation split the supernet was trained with (unless overridden)."""
    train = extra.get("train_config", {})
    return {"dataset": config.dataset or train.get("dataset", "fashion-mnist"),
            "val_size": config.val_size if config.val_size is not None else train.get("val_size", 5000),
            "data_seed": config.data_seed if config.data_seed is not None else train.get("seed", 0)}


def default_out(space: SearchSpace, precision: str = "fp32") -> Path:
    from hwnas.paths import predictor_dir

    return predictor_dir(space.name, precision)


def collect(config: CollectConfig, *, dataset: Any = None, progress: bool = True,
            rank: int | None = None, world: int | None = None) -> dict[str, Any]:
    """Run (or resume) a collection. ``dataset`` overrides loading (tests). Returns a summary."""
    import torch

    from hwnas.data import load_dataset
    from hwnas.supernet.checkpoint import file_sha256, load_supernet

    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world = int(os.environ.get("WORLD_SIZE", 1)) if world is None else world
    if config.threads:
        torch.set_num_threads(config.threads)
    device = _device(config.device)
    net, extra = load_supernet(config.supernet)
    net = net.to(device).eval()
    space = net.space
    out_dir = Path(config.out) if config.out else default_out(space, config.precision)
    data = _dataset_options(config, extra)
    meta = _protocol(config, file_sha256(config.supernet), space, data)
    if rank == 0:
        check_or_write_meta(out_dir, meta, config.supernet)
    _barrier(world)
    if rank != 0:
        check_or_write_meta(out_dir, meta, config.supernet)
    if dataset is None:
        dataset = load_dataset(data["dataset"], val_size=data["val_size"], seed=data["data_seed"],
                               in_channels=space.in_channels)
    if dataset.num_classes != space.num_classes or dataset.in_channels != space.in_channels:
        raise DataError(f"data set {data['dataset']!r} has {dataset.num_classes} classes / {dataset.in_channels} "
                        f"channels; supernet space {space.name!r} needs {space.num_classes} / {space.in_channels}; "
                        "pass the --dataset the supernet was trained on")
    main = out_dir / DATASET_FILE
    target = main if world == 1 else out_dir / f"dataset.rank{rank}.jsonl"
    done = {arch_key(architecture_from_dict(r["arch"], space), space) for r in repair_tail(main)}
    if target != main:
        done |= {arch_key(architecture_from_dict(r["arch"], space), space) for r in repair_tail(target)}
    planned = shard(collection_architectures(space, config.n, config.seed), rank, world)
    todo = [a for a in planned if arch_key(a, space) not in done]
    evaluator = SubnetEvaluator(net, dataset, config, device)
    layout = gene_layout(space)
    started = time.perf_counter()
    seconds = _run(todo, evaluator, layout, target, progress and rank == 0)
    wall = time.perf_counter() - started
    _barrier(world)
    merged = merge_shards(out_dir, space) if world > 1 and rank == 0 else 0
    total = len(read_records(main)) if rank == 0 else None
    return {"out": str(main), "measured": len(todo), "skipped": len(planned) - len(todo),
            "total_records": total, "merged": merged,
            "seconds_per_subnet": float(np.mean(seconds)) if seconds else None,
            "subnets_per_second": len(seconds) / wall if seconds and wall > 0 else None,
            "precision": config.precision, "world": world,
            "device": str(device), "config": asdict(config)}


def _run(todo: Iterable[AnyArchitecture], evaluator: SubnetEvaluator, layout: GeneLayoutBase, target: Path,
         progress: bool) -> list[float]:
    from tqdm.auto import tqdm

    seconds = []
    todo = list(todo)
    bar = tqdm(todo, desc="collect", unit="subnet", disable=not progress)
    for arch in bar:
        rec = evaluator.measure(arch)
        append_jsonl(target, {"arch": arch.to_dict(), "genes": layout.encode(arch)[0].tolist(), **rec})
        seconds.append(rec["seconds"])
        bar.set_postfix(acc=f"{rec['accuracy']:.4f}",
                        **({"int8": f"{rec[INT8_FIELD]:.4f}"} if INT8_FIELD in rec else {}),
                        s_per_subnet=f"{rec['seconds']:.2f}")
    return seconds


def _barrier(world: int) -> None:
    """Synchronise torchrun workers (initialising the process group on first use)."""
    if world <= 1:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    dist.barrier()


# --------------------------------------------------------------------------------- reading back

@dataclass
class AccuracyData:
    """A collected data set as arrays: genes re-encoded from the stored architectures."""

    space: SearchSpace
    genes: np.ndarray            # (n, num_genes)
    y: np.ndarray                # (n,) the target column
    records: list[dict[str, Any]]
    meta: dict[str, Any]


def read_accuracy_data(path: str | Path, target: str = "accuracy",
                       space: SearchSpace | str | None = None) -> AccuracyData:
    """Load ``dataset.jsonl`` (its ``dataset.meta.json`` names the space) for fitting or benchmarks."""
    path = Path(path)
    if path.is_dir():
        path = path / DATASET_FILE
    if not path.is_file():
        raise DataError(f"accuracy data set {path} does not exist; create it with `hwnas collect`")
    meta_file = path.with_name(META_FILE)
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if space is None and "space" not in meta:
        raise DataError(f"{meta_file} is missing, so the search space of {path} is unknown; pass --space")
    space = get_space(space if space is not None else meta["space"])
    if "space_fingerprint" in meta:
        space.check_fingerprint(meta["space_fingerprint"], f"accuracy data set {path}")
    records = [r for r in read_records(path) if target in r]
    if not records:
        raise DataError(f"{path} holds no records with a {target!r} value; collect some with `hwnas collect`"
                        + (" --repeat-calibration" if target == "accuracy_2" else ""))
    layout = gene_layout(space)
    genes = layout.encode([architecture_from_dict(r["arch"], space) for r in records])
    y = np.array([r[target] for r in records], dtype=np.float64)
    return AccuracyData(space, genes, y, records, meta)
