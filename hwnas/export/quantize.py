"""INT8 post-training static quantisation with ONNX Runtime (QDQ format, per-channel weights).

Static quantisation fixes activation ranges from real calibration images, so the INT8 model needs
no runtime range computation. QDQ (QuantizeLinear/DequantizeLinear pairs around float ops) is the
format ONNX Runtime recommends: every execution provider understands it and fuses the pairs into
integer kernels where it has them. Weights are quantised per output channel, which depthwise
convolutions (very different ranges per channel) need to keep accuracy. The model is run through
``quant_pre_process`` (shape inference + graph optimisation) first, as ORT's docs advise,
so every tensor has a shape and Conv+activation patterns are already fused before ranges are taken.

Activations default to uint8 with int8 weights (U8S8). ORT's guide suggests trying S8S8 first, but
on x86 CPUs without VNNI (AVX2 only) S8S8 QDQ convolutions take a slow path: on this code
base's models (1 thread, batch 1) S8S8 ran several times slower than FP32 and U8S8 slower than
FP32 as well (these small models are dominated by Q/DQ overhead; no result file records it). ``activation_type="int8"`` selects S8S8.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx

from hwnas.atomic_io import atomic_write_bytes
from hwnas.data import Split
from hwnas.errors import DataError
from hwnas.export.onnx_export import ExportError, read_metadata
from hwnas.supernet.calibration import iterate

DEFAULT_CALIBRATION_IMAGES = 300
CALIBRATION_BATCH = 32
ACTIVATION_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}  # name -> onnxruntime QuantType member


class ImageCalibrationReader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over preprocessed images.

    Yields ``{input_name: batch}`` dicts; a model with a fixed batch dimension gets batches of
    exactly that size (a short last batch is dropped rather than padded with fake images).
    """

    def __init__(self, batches: list[np.ndarray], input_name: str) -> None:
        self.input_name = input_name
        self._batches = batches
        self._iter: Iterator[np.ndarray] = iter(batches)

    @classmethod
    def from_split(cls, split: Split, model: onnx.ModelProto, resolution: int, mean: tuple[float, ...],
                   std: tuple[float, ...]) -> "ImageCalibrationReader":
        arg = model.graph.input[0]
        dim0 = arg.type.tensor_type.shape.dim[0]
        batch = dim0.dim_value if dim0.HasField("dim_value") and dim0.dim_value > 0 else CALIBRATION_BATCH
        return cls(calibration_batches(split, resolution, mean, std, batch), arg.name)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch.astype(np.float32)}

    def rewind(self) -> None:
        self._iter = iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


def calibration_batches(split: Split, resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
                        batch: int = CALIBRATION_BATCH) -> list[np.ndarray]:
    """``split``'s images preprocessed for a model at ``resolution``, in full batches of ``batch``
    (a short last batch is dropped): the calibration inputs of :func:`quantize_graph`. Preparing
    them once lets a caller quantise many models of one resolution on the same images."""
    images = np.concatenate([x.numpy() for x, _ in iterate(split, resolution, mean, std, 256)])
    batches = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
    if not batches:
        raise DataError(f"INT8 calibration needs at least {batch} images (the model's batch size), "
                        f"got {len(images)}; pass more with --int8-calib-images")
    return batches


def _reader_class() -> type:
    """The reader as a real subclass of ORT's ABC (ORT checks ``isinstance``); ORT imported lazily."""
    from onnxruntime.quantization import CalibrationDataReader

    return type("OrtImageCalibrationReader", (ImageCalibrationReader, CalibrationDataReader), {})


def quantize_int8(fp32_model: str | Path, out_path: str | Path, calibration: Split, *,
                  resolution: int | None = None, mean: tuple[float, ...] | None = None,
                  std: tuple[float, ...] | None = None, per_channel: bool = True,
                  activation_type: str = "uint8", reduce_range: bool = False) -> Path:
    """Write an INT8 (QDQ, per-channel, static) version of ``fp32_model`` to ``out_path`` atomically.

    ``calibration`` holds raw training images (a few hundred are enough); they are preprocessed like
    the FP32 model's inputs. ``resolution``/``mean``/``std`` default to the values stamped in the
    model's hwnas metadata. The hwnas metadata is copied to the INT8 model, plus a ``precision`` entry.
    """
    _check_activation_type(activation_type)
    fp32_model = Path(fp32_model)
    source = onnx.load(str(fp32_model))
    resolution, mean, std = _preprocessing(fp32_model, resolution, mean, std)
    reader = _reader_class().from_split(calibration, source, resolution, mean, std)  # fails fast on too few images
    result = _quantize(source.SerializeToString(), reader, fp32_model.name, per_channel=per_channel,
                       activation_type=activation_type, reduce_range=reduce_range)
    del result.metadata_props[:]
    for entry in source.metadata_props:
        result.metadata_props.add().CopyFrom(entry)
    prop = result.metadata_props.add()
    prop.key = "hwnas.precision"
    prop.value = precision_label(activation_type, per_channel)
    return atomic_write_bytes(out_path, result.SerializeToString())


def quantize_graph(fp32_onnx: bytes, batches: list[np.ndarray], *, name: str = "graph",
                   per_channel: bool = True, activation_type: str = "uint8",
                   fix: str = "profile this device at --precision fp32") -> bytes:
    """INT8 (QDQ) bytes of an in-memory FP32 graph, activation ranges taken from ``batches``.

    The same quantiser and settings as :func:`quantize_int8`, for graphs whose input is not an image
    (a latency table's block graphs take feature maps) or whose images are prepared once for many
    models (``hwnas collect --precision int8``): the caller supplies the calibration inputs.
    ``fix`` is what a failure message tells the user to do instead.
    """
    _check_activation_type(activation_type)
    model = onnx.load_from_string(fp32_onnx)
    reader = _reader_class()([np.asarray(b, dtype=np.float32) for b in batches], model.graph.input[0].name)
    return _quantize(fp32_onnx, reader, name, per_channel=per_channel, activation_type=activation_type,
                     reduce_range=False, fix=fix).SerializeToString()


def precision_label(activation_type: str = "uint8", per_channel: bool = True) -> str:
    """How a model was quantised, as stamped in its metadata and a latency table's provenance."""
    return f"int8 qdq {'u8' if activation_type == 'uint8' else 's8'}s8{' per-channel' if per_channel else ''}"


def _check_activation_type(activation_type: str) -> None:
    if activation_type not in ACTIVATION_TYPES:
        raise ExportError(f"activation_type {activation_type!r} is not one of {', '.join(ACTIVATION_TYPES)}")


def _quantize(fp32_onnx: bytes, reader: Any, name: str, *, per_channel: bool, activation_type: str,
              reduce_range: bool, fix: str = "export without --int8") -> onnx.ModelProto:
    """The one ORT static-quantisation call (pre-process, then QDQ with int8 weights) of hwnas."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as tmp:
        source = Path(tmp) / "fp32.onnx"
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(fp32_onnx)
        try:
            # ONNX's own shape inference covers these graphs (only the batch axis is symbolic); ORT's
            # symbolic pass would add seconds per model and nothing else
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, reduce_range=reduce_range,
                            activation_type=getattr(QuantType, ACTIVATION_TYPES[activation_type]),
                            weight_type=QuantType.QInt8)
        except Exception as exc:  # ORT's quantiser raises assorted types from deep inside
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ExportError(f"INT8 quantisation of {name} failed ({type(exc).__name__}: "
                              f"{first[:300]}); {fix}") from exc
        return onnx.load(str(quantized))


def _preprocessing(model: Path, resolution: int | None, mean: Any, std: Any) -> tuple[int, tuple, tuple]:
    meta = read_metadata(model)
    norm = meta.get("normalization") or {}
    resolution = resolution if resolution is not None else meta.get("resolution")
    mean = tuple(mean) if mean is not None else tuple(norm.get("mean", ()))
    std = tuple(std) if std is not None else tuple(norm.get("std", ()))
    if resolution is None or not mean or not std:
        raise ExportError(f"{model.name} carries no hwnas preprocessing metadata (resolution/normalization); "
                          "pass resolution, mean and std to quantize_int8")
    return int(resolution), mean, std
