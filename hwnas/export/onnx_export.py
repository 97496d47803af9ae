"""Static subnet -> ONNX file, and the ONNX Runtime checks that make the file trustworthy.

The exported graph takes ``input`` (float32, N x C x R x R, already normalised with the data set's
mean/std and resized to the architecture's resolution, exactly as :func:`hwnas.supernet.calibration.iterate`
prepares images) and returns ``logits`` (N x classes). BN is folded into the convolutions first.

Parity is checked on real test images, not random noise: random inputs drive activations into
ranges the network never sees, which hides or invents discrepancies. The relative error is
``max|onnx - torch| / max(max|torch|, eps)`` over the whole logits batch (``eps`` = 1e-6): the
error scaled by the size of the logits, robust to individual logits near zero (an element-wise
ratio would explode there) while still failing a model whose logits are off by more than
``tolerance`` of their own scale.

Two exporters are supported. ``torchscript`` (``dynamo=False``) is the default: on this code base
it produces the same operators as the dynamo exporter, needs no ``onnxscript``, and is several
times faster per subnet on a small CPU with torch 2.13 (no result file records it), which matters
when a whole Pareto front is exported. ``dynamo`` (``torch.export`` + onnxscript, opset >= 18) is the
path PyTorch is moving to; select it with ``exporter="dynamo"``. If the TorchScript exporter is
missing from a future torch, ``torchscript`` falls back to ``dynamo`` automatically.
"""

from __future__ import annotations

import importlib.util
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import onnx
import torch
from torch import nn

import hwnas
from hwnas.arch import Architecture
from hwnas.atomic_io import atomic_write_bytes
from hwnas.data import Split
from hwnas.errors import HwnasError
from hwnas.export.bn_fold import fold_batchnorm
from hwnas.export.settings import DEFAULT_OPSET, DYNAMO_MIN_OPSET, check_onnx_options
from hwnas.space import SearchSpace
from hwnas.supernet.calibration import iterate

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
PARITY_TOLERANCE = 1e-4
PARITY_EPS = 1e-6
METADATA_PREFIX = "hwnas."


class ExportError(HwnasError, RuntimeError):
    """A model could not be exported or its ONNX file does not reproduce the PyTorch model."""


# ----------------------------------------------------------------------------------- metadata

def model_metadata(arch: Architecture, space: SearchSpace, *, predicted: Mapping[str, Any] | None = None,
                   supernet_sha256: str | None = None, mean: tuple[float, ...] | None = None,
                   std: tuple[float, ...] | None = None, class_names: tuple[str, ...] | None = None,
                   **extra: Any) -> dict[str, Any]:
    """The provenance stamped into an exported model: which subnet of which space, from which supernet
    weights, what the search predicted for it, and how inputs must be preprocessed."""
    meta: dict[str, Any] = {"architecture": arch.to_dict(), "space": space.name,
                            "space_fingerprint": space.fingerprint(), "resolution": arch.resolution}
    if predicted:
        if "accuracy" in predicted:
            meta["predicted_accuracy"] = predicted["accuracy"]
        if "latency_ms" in predicted:
            meta["predicted_latency_ms"] = dict(predicted["latency_ms"])
    if supernet_sha256:
        meta["supernet_sha256"] = supernet_sha256
    if mean is not None and std is not None:
        meta["normalization"] = {"mean": list(mean), "std": list(std), "scale": "pixel / 255"}
    if class_names:
        meta["class_names"] = list(class_names)
    meta.update(extra)
    return meta


def _set_metadata(model: onnx.ModelProto, metadata: Mapping[str, Any]) -> None:
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key if key.startswith(METADATA_PREFIX) else METADATA_PREFIX + key
        entry.value = value if isinstance(value, str) else json.dumps(value)


def read_metadata(model: str | Path | onnx.ModelProto) -> dict[str, Any]:
    """The ``hwnas.*`` metadata of an exported model, JSON values decoded, prefix removed."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    out: dict[str, Any] = {}
    for entry in proto.metadata_props:
        if entry.key.startswith(METADATA_PREFIX):
            try:
                out[entry.key[len(METADATA_PREFIX):]] = json.loads(entry.value)
            except json.JSONDecodeError:
                out[entry.key[len(METADATA_PREFIX):]] = entry.value
    return out


# ----------------------------------------------------------------------------------- export

def _opset(opset: int | None, exporter: str) -> int:
    """``None``: the latency tables' opset for TorchScript, the dynamo exporter's minimum for dynamo."""
    return opset if opset is not None else (DYNAMO_MIN_OPSET if exporter == "dynamo" else DEFAULT_OPSET)


def _export_torchscript(model: nn.Module, example: torch.Tensor, batch: int | None, opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    dynamic = {INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}} if batch is None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=dynamic)
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(model: nn.Module, example: torch.Tensor, batch: int | None, opset: int) -> onnx.ModelProto:
    if importlib.util.find_spec("onnxscript") is None:  # the dynamo exporter's op library
        raise ExportError("the dynamo exporter needs onnxscript: pip install onnxscript, "
                          "or use --exporter torchscript")
    dynamic = ({0: torch.export.Dim(BATCH_DIM, min=1, max=65536)},) if batch is None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=dynamic, optimize=True)
    return program.model_proto


def to_onnx(model: nn.Module, input_shape: tuple[int, ...], *, batch: int | None = None,
            opset: int | None = None, exporter: str = "torchscript") -> onnx.ModelProto:
    """Export an eval-mode module to an in-memory ONNX model (``input_shape`` without the batch dim)."""
    opset = _opset(opset, exporter)
    check_onnx_options(batch, opset, exporter)
    example = torch.randn(batch or 2, *input_shape)  # 2, not 1: a batch of one could be specialised away
    try:
        if exporter == "torchscript":
            try:
                return _export_torchscript(model, example, batch, opset)
            except (AttributeError, ImportError, NotImplementedError):
                return _export_dynamo(model, example, batch, max(opset, DYNAMO_MIN_OPSET))
        return _export_dynamo(model, example, batch, opset)
    except ExportError:
        raise
    except Exception as exc:  # exporter internals raise many types; the user needs the summary
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"torch.onnx.export ({exporter}) failed: {type(exc).__name__}: {first[:400]}; "
                          f"try the other exporter (--exporter {'dynamo' if exporter == 'torchscript' else 'torchscript'})"
                          ) from exc


def export_subnet(subnet: nn.Module, arch: Architecture, path: str | Path, *, batch: int | None = None,
                  opset: int | None = None, metadata: Mapping[str, Any] | None = None,
                  exporter: str = "torchscript") -> Path:
    """Fold BN, export, validate with ``onnx.checker`` and atomically write ``path``.

    ``subnet`` must already have recalibrated BN statistics (the caller's job: they depend on the
    calibration images). ``batch=None`` exports a dynamic batch axis named ``batch``. ``metadata``
    (see :func:`model_metadata`) is stored as ``hwnas.*`` metadata_props, JSON-encoded where not a string.
    Run :func:`check_parity` afterwards: it removes the file if ONNX Runtime disagrees with PyTorch.
    """
    in_channels = _in_channels(subnet)
    folded = fold_batchnorm(subnet)
    proto = to_onnx(folded, (in_channels, arch.resolution, arch.resolution), batch=batch, opset=opset,
                    exporter=exporter)
    stamp = {"architecture": arch.to_dict(), **(metadata or {}), "hwnas_version": hwnas.__version__,
             "exporter": exporter, "bn_folded": True,
             "input": {"name": INPUT_NAME, "shape": [batch or BATCH_DIM, in_channels, arch.resolution,
                                                     arch.resolution], "dtype": "float32"}}
    _set_metadata(proto, stamp)
    proto.doc_string = (f"hwnas subnet {arch.to_json()}: input '{INPUT_NAME}' is normalised float32 "
                        f"N x {in_channels} x {arch.resolution} x {arch.resolution}; output '{OUTPUT_NAME}'")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the exported model fails onnx.checker ({str(exc).splitlines()[0][:400]}); "
                          "try another --opset or --exporter") from None
    return atomic_write_bytes(path, proto.SerializeToString())


def _in_channels(model: nn.Module) -> int:
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ExportError("the model has no convolution; only hwnas subnets can be exported")
    return int(first.in_channels)


# ----------------------------------------------------------------------------------- ONNX Runtime

def ort_session(model: bytes | str | Path, threads: int = 0) -> Any:
    """A CPU ``InferenceSession`` for checks (all graph optimisations on, as deployment would run it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = model if isinstance(model, (bytes, bytearray)) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"onnxruntime cannot load {source if isinstance(source, str) else 'the model'} "
                          f"({first[:300]}); re-export it") from None


def run_session(session: Any, inputs: np.ndarray) -> np.ndarray:
    """Run ``inputs`` (N x C x R x R) through a session, in chunks when the model has a fixed batch."""
    arg = session.get_inputs()[0]
    fixed = arg.shape[0] if isinstance(arg.shape[0], int) and arg.shape[0] > 0 else None
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    if fixed is None:
        return session.run(None, {arg.name: inputs})[0]
    outputs = []
    for start in range(0, len(inputs), fixed):
        chunk = inputs[start:start + fixed]
        short = fixed - len(chunk)
        if short:  # pad the last chunk by repeating images; their outputs are dropped
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], short, axis=0)])
        outputs.append(session.run(None, {arg.name: chunk})[0][:fixed - short])
    return np.concatenate(outputs)


def prepared_images(split: Split, n_images: int, resolution: int, mean: tuple[float, ...],
                    std: tuple[float, ...]) -> torch.Tensor:
    """The first ``n_images`` of ``split`` preprocessed exactly as for evaluation (real images for parity)."""
    if len(split) == 0:
        raise ExportError("the test split is empty; parity needs real images")
    head = split.subset(np.arange(min(n_images, len(split))))
    return torch.cat([x for x, _ in iterate(head, resolution, mean, std, batch_size=256)])


# ----------------------------------------------------------------------------------- parity

@dataclass(frozen=True)
class Parity:
    """ONNX Runtime vs PyTorch on the same inputs; ``where`` is (image, class) of the largest difference."""

    max_abs: float
    max_rel: float
    where: tuple[int, int]
    onnx_value: float
    torch_value: float

    def describe(self) -> str:
        i, c = self.where
        return (f"max relative error {self.max_rel:.3g} (max |onnx - torch| = {self.max_abs:.3g} at image {i}, "
                f"logit {c}: onnx {self.onnx_value:.6g} vs torch {self.torch_value:.6g})")


def compare_outputs(onnx_out: np.ndarray, torch_out: np.ndarray) -> Parity:
    """Max abs error and max abs error relative to the reference's scale (see module docstring)."""
    if onnx_out.shape != torch_out.shape:
        raise ExportError(f"ONNX output shape {onnx_out.shape} differs from PyTorch's {torch_out.shape}")
    a, b = onnx_out.astype(np.float64), torch_out.astype(np.float64)
    diff = np.abs(a - b)
    if not np.all(np.isfinite(diff)):
        diff = np.where(np.isfinite(diff), diff, np.inf)
    flat = int(np.argmax(diff))
    index = np.unravel_index(flat, diff.shape)
    where = (int(index[0]), int(index[-1])) if diff.ndim > 1 else (int(index[0]), 0)
    max_abs = float(diff.reshape(-1)[flat])
    scale = max(float(np.abs(b).max()) if b.size else 0.0, PARITY_EPS)
    return Parity(max_abs, max_abs / scale, where, float(a[index]), float(b[index]))


@torch.no_grad()
def parity(model: bytes | str | Path, subnet: nn.Module, inputs: torch.Tensor) -> Parity:
    """Compare ONNX Runtime's logits for ``inputs`` with the eval-mode PyTorch ``subnet``'s."""
    was_training = subnet.training
    subnet.eval()
    try:
        reference = subnet(inputs.float()).float().cpu().numpy()
    finally:
        subnet.train(was_training)
    return compare_outputs(run_session(ort_session(model), inputs.cpu().numpy()), reference)


def check_parity(onnx_path: str | Path, subnet: nn.Module, inputs: torch.Tensor, *,
                 tolerance: float = PARITY_TOLERANCE, remove_on_failure: bool = True) -> tuple[float, float]:
    """``(max_abs, max_rel)`` of ONNX Runtime vs PyTorch; raises :class:`ExportError` above ``tolerance``.

    On failure the file is deleted (unless ``remove_on_failure`` is False), so a wrong model is
    never left where a deployment script could pick it up.
    """
    path = Path(onnx_path)
    try:
        result = parity(path, subnet, inputs)
        if not result.max_rel <= tolerance:  # also catches NaN
            raise ExportError(f"{path.name}: ONNX Runtime disagrees with PyTorch: {result.describe()} exceeds "
                              f"tolerance {tolerance:g} on {len(inputs)} test images; the file was "
                              f"{'removed' if remove_on_failure else 'kept'}. Try --exporter "
                              f"dynamo/torchscript or another --opset, and report the architecture")
    except ExportError:
        if remove_on_failure:
            path.unlink(missing_ok=True)
        raise
    return result.max_abs, result.max_rel


# ----------------------------------------------------------------------------------- accuracy

def _batches(split: Split, resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
             batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for x, y in iterate(split, resolution, mean, std, batch_size):
        yield x.numpy(), y.numpy()


def onnx_accuracy(model: bytes | str | Path, split: Split, resolution: int, mean: tuple[float, ...],
                  std: tuple[float, ...], batch_size: int = 500, threads: int = 0) -> float:
    """Top-1 accuracy (fraction) of an ONNX model on ``split`` with ONNX Runtime, batched."""
    return onnx_evaluate_on(model, _batches(split, resolution, mean, std, batch_size), threads)[0]


def onnx_predictions(model: bytes | str | Path, split: Split, resolution: int, mean: tuple[float, ...],
                     std: tuple[float, ...], batch_size: int = 500, threads: int = 0) -> np.ndarray:
    """The class an ONNX model predicts for each image of ``split``, in the split's order: what a paired
    comparison of two models on the same images needs (:mod:`hwnas.classifier_comparison`)."""
    return np.concatenate([logits.argmax(1) for logits, _ in
                           _batch_logits(model, _batches(split, resolution, mean, std, batch_size), threads)])


def _batch_logits(model: bytes | str | Path, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                  threads: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(logits, y)`` per prepared batch: one ONNX Runtime session, one call per batch."""
    session = ort_session(model, threads)
    for x, y in batches:
        yield run_session(session, x), y


def onnx_evaluate_on(model: bytes | str | Path, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                     threads: int = 0) -> tuple[float, float]:
    """Top-1 accuracy (fraction) and mean cross-entropy of an ONNX model on prepared ``(x, y)`` numpy
    batches, one ONNX Runtime call per batch: the ONNX twin of
    :func:`hwnas.supernet.calibration.evaluate_on`, so both report the same two numbers."""
    correct, loss_sum, n = 0, 0.0, 0
    for logits, y in _batch_logits(model, batches, threads):
        logits = logits.astype(np.float64)
        shifted = logits - logits.max(1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        loss_sum += float(-log_probs[np.arange(len(y)), y].sum())
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    return correct / max(n, 1), loss_sum / max(n, 1)
