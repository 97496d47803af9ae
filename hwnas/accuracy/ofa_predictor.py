"""once-for-all's MLP accuracy predictors, scored in numpy: its ``.pth`` file, its encoding, its numbers.

Users of the published once-for-all (OFA) MobileNetV3 supernet hold OFA's own accuracy predictor
rather than an hwnas one. OFA has two, which differ in file layout and in how an architecture
becomes the MLP's input; :func:`load_ofa_predictor` tells them apart by the state dict's keys:

``tutorial`` (``ofa.tutorial.AccuracyPredictor``; the published ``acc_predictor.pth``)
    A bare ``nn.Sequential`` state dict (``0.weight``, ``0.bias``, ``2.weight`` ... ``6.bias``:
    Linear/ReLU alternating, the last Linear with a bias). Input (``spec2feats``, 128 values): a
    one-hot kernel size for each of the 20 block slots (60), a one-hot expand ratio per slot
    (60), both all-zero for slots beyond their stage's depth, then a one-hot of ``(r - 112) // 16``
    (8 buckets: 160..175 px share one). Note: OFA's tutorial trained it on the width-1.2 supernet.

``arch-encoder`` (``ofa.nas.accuracy_predictor.AccuracyPredictor`` + ``MobileNetArchEncoder``)
    The module's state dict (``layers.i.0.weight``/``bias`` per hidden layer, ``layers.n.weight``
    without bias, ``base_acc``), bare or wrapped in ``{"state_dict": ...}`` (OFA's loader takes
    both). Input (``arch2feature``): a one-hot of the resolution over the encoder's
    ``image_size_list``, then kernel one-hots of every slot, then expand one-hots of every slot.
    The output adds ``base_acc``.

Either may carry DataParallel's ``module.`` prefix. Scoring is batched (one-hot matrix, then dense
layers in float64: no per-architecture Python loop, no torch), so a search scores it like any
hwnas predictor through ``predict(genes)``. Outputs are OFA's own numbers, unclipped (accuracy as
a fraction for predictors OFA trained; anything for a random one).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hwnas.accuracy.compiled import as_genes
from hwnas.arch import Architecture
from hwnas.encoding import GeneLayout
from hwnas.errors import ArchitectureError, HwnasError
from hwnas.space import SearchSpace, get_space
from hwnas.torch_file import read_tensor_pickle

TUTORIAL = "tutorial"
ARCH_ENCODER = "arch-encoder"

#: ``MobileNetArchEncoder``'s ``image_size_list`` by input width, when the caller gives none:
#: the encoder's own default ([224]) and ``AccuracyDataset.build_acc_dataset``'s ([128, 160, 192, 224]).
OFA_DEFAULT_IMAGE_SIZES: dict[int, tuple[int, ...]] = {1: (224,), 4: (128, 160, 192, 224)}

_TUTORIAL_KEY = re.compile(r"^(\d+)\.(weight|bias)$")
_HIDDEN_KEY = re.compile(r"^layers\.(\d+)\.0\.(weight|bias)$")
_OUTPUT_KEY = re.compile(r"^layers\.(\d+)\.(weight|bias)$")
_ROWS_PER_CHUNK = 8192  # bounds the (rows x hidden) float64 intermediates to ~26 MB
_FIX = ("pass once-for-all's accuracy predictor file (acc_predictor.pth, or an AccuracyPredictor's "
        "state_dict saved with torch.save)")


# ------------------------------------------------------------------------------------- encodings
@dataclass(frozen=True, eq=False)
class OFAEncoding:
    """Where each choice of an architecture puts a 1 in the MLP's input vector.

    ``kernel_columns[slot, k]`` and ``expand_columns[slot, e]`` are input columns for the space's
    ``k``-th kernel size / ``e``-th expand ratio in that slot (set only for active slots);
    ``resolution_columns[r]`` is the column of the space's ``r``-th resolution, -1 where the
    encoding has none. ``image_sizes`` are the resolutions the encoding knows: the encoder's
    ``image_size_list``, or 112..239 for the tutorial's 16-px buckets. The arrays are read-only.
    """

    kind: str
    num_inputs: int
    kernel_columns: np.ndarray
    expand_columns: np.ndarray
    resolution_columns: np.ndarray
    image_sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("kernel_columns", "expand_columns", "resolution_columns"):
            array = np.array(getattr(self, name), dtype=np.int64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def supported_resolutions(self, space: SearchSpace) -> tuple[int, ...]:
        """The space's resolutions this encoding can express (a search must keep to them)."""
        return tuple(r for r, c in zip(space.resolutions, self.resolution_columns) if c >= 0)


def tutorial_encoding(space: SearchSpace | str) -> OFAEncoding:
    """``ofa.tutorial.AccuracyPredictor.spec2feats``: 20 slots x 3 kernels, 20 x 3 expands, 8 resolution buckets."""
    space = get_space(space)
    _require_ofa_shape(space, TUTORIAL, need=dict(num_block_slots=20, max_depth=4, kernel_sizes=(3, 5, 7),
                                                  expand_ratios=(3, 4, 6)))
    slots = np.arange(20)[:, None] * 3
    buckets = np.array([(r - 112) // 16 for r in space.resolutions])
    resolution_columns = np.where((buckets >= 0) & (buckets < 8), 120 + buckets, -1)
    return OFAEncoding(TUTORIAL, 128, slots + np.arange(3), 60 + slots + np.arange(3), resolution_columns,
                       tuple(range(112, 240)))


def arch_encoder_encoding(space: SearchSpace | str, image_sizes: Sequence[int]) -> OFAEncoding:
    """``ofa.nas.accuracy_predictor.MobileNetArchEncoder(image_size_list=image_sizes)`` with the space's
    kernel, expand and depth lists (ascending, as OFA's defaults are)."""
    space = get_space(space)
    image_sizes = tuple(int(r) for r in image_sizes)
    if not image_sizes or len(set(image_sizes)) != len(image_sizes):
        raise HwnasError(f"image sizes {list(image_sizes)} must be distinct and non-empty (the encoder's "
                         "image_size_list, in the order the predictor was trained with)")
    n_res, n_slots = len(image_sizes), space.num_block_slots
    nk, ne = len(space.kernel_sizes), len(space.expand_ratios)
    slots = np.arange(n_slots)[:, None]
    kernel_columns = n_res + slots * nk + np.arange(nk)
    expand_columns = n_res + n_slots * nk + slots * ne + np.arange(ne)
    resolution_columns = np.array([image_sizes.index(r) if r in image_sizes else -1 for r in space.resolutions])
    return OFAEncoding(ARCH_ENCODER, n_res + n_slots * (nk + ne), kernel_columns, expand_columns,
                       resolution_columns, image_sizes)


def _require_ofa_shape(space: SearchSpace, kind: str, need: dict[str, Any]) -> None:
    found = {name: getattr(space, name) for name in need}
    if found != need:
        raise HwnasError(f"once-for-all's {kind} accuracy predictor encodes MobileNetV3 subnets with {need}; "
                         f"space {space.name!r} has {found}. Use it with space 'ofa-mbv3-w1.0'.")


# ------------------------------------------------------------------------------------- the predictor
class OFAAccuracyPredictor:
    """once-for-all's MLP accuracy predictor over one hwnas space; ``predict(genes)`` like any hwnas predictor.

    ``weights[i]`` is Linear layer ``i``'s ``(out, in)`` matrix and ``biases[i]`` its bias (``None``
    for none); ReLU follows every layer but the last; ``base`` is added to the output.
    """

    def __init__(self, space: SearchSpace | str, encoding: OFAEncoding, weights: Sequence[np.ndarray],
                 biases: Sequence[np.ndarray | None], base: float = 0.0, meta: dict[str, Any] | None = None) -> None:
        self.space = get_space(space)
        self.layout = GeneLayout(self.space)
        self.encoding = encoding
        self.weights_t = tuple(np.ascontiguousarray(np.asarray(w, dtype=np.float64).T) for w in weights)
        self.biases = tuple(None if b is None else np.asarray(b, dtype=np.float64) for b in biases)
        self.base = float(base)
        self.meta = dict(meta or {})
        _check_shapes(self.weights_t, self.biases, encoding, str(self.meta.get("source", "predictor")))
        self.resolutions = encoding.supported_resolutions(self.space)

    def features(self, genes: np.ndarray | Sequence[Architecture] | Architecture) -> np.ndarray:
        """The MLP's input, exactly OFA's encoder output: ``(n, num_inputs)`` float64 of 0/1."""
        genes = as_genes(self.layout, genes)
        L, enc, n = self.layout, self.encoding, len(genes)
        res_col = enc.resolution_columns[genes[:, L.resolution_gene]]
        if (res_col < 0).any():
            bad = sorted({int(r) for r in L.resolution_values[genes[res_col < 0, L.resolution_gene]]})
            raise ArchitectureError(
                f"once-for-all's {enc.kind} accuracy predictor has no input for resolution(s) {bad}; it covers "
                f"{list(self.resolutions)} of space {self.space.name!r}: restrict the search to those")
        active = L.active(genes)
        rows = np.broadcast_to(np.arange(n)[:, None], active.shape)[active]
        slots = np.broadcast_to(np.arange(L.num_slots), active.shape)[active]
        X = np.zeros((n, enc.num_inputs))
        X[rows, enc.kernel_columns[slots, genes[:, L.kernel_genes][active]]] = 1.0
        X[rows, enc.expand_columns[slots, genes[:, L.expand_genes][active]]] = 1.0
        X[np.arange(n), res_col] = 1.0
        return X

    def predict(self, genes: np.ndarray | Sequence[Architecture] | Architecture) -> np.ndarray:
        """OFA's predicted accuracy per row, float64 ``(n,)`` (a gene matrix or architectures).

        BLAS runs one thread here: a search's batches are small, and on a busy machine BLAS threads
        only contend (experiments/results/ofa_predictor_speed.json times both).
        """
        X = self.features(genes)
        out = np.empty(len(X))
        with _blas_controller().limit(limits=1, user_api="blas"):
            for start in range(0, len(X), _ROWS_PER_CHUNK):
                out[start:start + _ROWS_PER_CHUNK] = self.forward(X[start:start + _ROWS_PER_CHUNK])
        return out

    def forward(self, h: np.ndarray) -> np.ndarray:
        """The MLP on encoded inputs (:meth:`features`), with BLAS's own thread count."""
        last = len(self.weights_t) - 1
        for i, (w_t, b) in enumerate(zip(self.weights_t, self.biases)):
            h = h @ w_t
            if b is not None:
                h += b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h[:, 0] + self.base


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    """threadpoolctl's controller, built once: a limit through it is far cheaper than ``threadpool_limits``,
    which inspects the loaded libraries on every call."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _check_shapes(weights_t: Sequence[np.ndarray], biases: Sequence[np.ndarray | None], encoding: OFAEncoding,
                  source: str) -> None:
    width = encoding.num_inputs
    if weights_t[0].shape[0] != width:
        hint = "; pass the image sizes its encoder was built with" if encoding.kind == ARCH_ENCODER else ""
        raise HwnasError(f"{source} takes {weights_t[0].shape[0]} inputs, but once-for-all's {encoding.kind} "
                         f"encoding of this space gives {width}{hint}")
    for i, (w_t, b) in enumerate(zip(weights_t, biases)):
        if w_t.ndim != 2 or w_t.shape[0] != width or (b is not None and b.shape != (w_t.shape[1],)):
            raise HwnasError(f"{source}: layer {i} has weight {w_t.T.shape} and bias "
                             f"{None if b is None else b.shape}, which do not chain from {width} inputs; {_FIX}")
        width = w_t.shape[1]
    if width != 1:
        raise HwnasError(f"{source}: the last layer has {width} outputs, an accuracy predictor has 1; {_FIX}")


# ------------------------------------------------------------------------------------- loading
def load_ofa_predictor(path: str | Path, space: SearchSpace | str = "ofa-mbv3-w1.0",
                       image_sizes: Sequence[int] | None = None) -> OFAAccuracyPredictor:
    """Load once-for-all's accuracy predictor file (either layout, see the module doc) for ``space``.

    ``image_sizes`` is the ``MobileNetArchEncoder``'s ``image_size_list`` of an arch-encoder
    predictor; without it the input width decides: the space's resolutions if they fit, else
    OFA's defaults (:data:`OFA_DEFAULT_IMAGE_SIZES`). torch is imported here only.
    """
    path = Path(path)
    if not path.is_file():
        raise HwnasError(f"accuracy predictor {path} does not exist; {_FIX}")
    raw = read_tensor_pickle(path, fix=_FIX)
    return ofa_predictor_from_state_dict(raw, space, image_sizes, source=f"accuracy predictor {path}")


def ofa_predictor_from_state_dict(state: Any, space: SearchSpace | str = "ofa-mbv3-w1.0",
                                  image_sizes: Sequence[int] | None = None,
                                  source: str = "accuracy predictor") -> OFAAccuracyPredictor:
    """:func:`load_ofa_predictor` on an already loaded state dict (tensors or arrays)."""
    space = get_space(space)
    arrays = _state_arrays(state, source)
    if any(k.startswith("layers.") for k in arrays):
        weights, biases, base = _arch_encoder_layers(arrays, source)
        n_inputs = weights[0].shape[1]
        sizes = image_sizes if image_sizes is not None else _default_image_sizes(space, n_inputs, source)
        encoding = arch_encoder_encoding(space, sizes)
    else:
        weights, biases = _tutorial_layers(arrays, source)
        base = 0.0
        encoding = tutorial_encoding(space)
    meta = {"source": source, "kind": encoding.kind, "image_sizes": list(encoding.image_sizes),
            "hidden": [int(w.shape[0]) for w in weights[:-1]]}
    return OFAAccuracyPredictor(space, encoding, weights, biases, base, meta)


def _state_arrays(state: Any, source: str) -> dict[str, np.ndarray]:
    """Unwrap ``{"state_dict": ...}``, strip ``module.``, turn tensors into float64 arrays."""
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state:
        raise HwnasError(f"{source} holds no state dict (found {type(state).__name__}); {_FIX}")
    arrays: dict[str, np.ndarray] = {}
    for key, value in state.items():
        name = key[len("module."):] if isinstance(key, str) and key.startswith("module.") else key
        try:
            arrays[str(name)] = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):
            raise HwnasError(f"{source}: entry {key!r} is not a tensor; {_FIX}") from None
    return arrays


def _tutorial_layers(arrays: dict[str, np.ndarray], source: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``nn.Sequential(Linear, ReLU, Linear, ..., Linear)``: Linear layers at indices 0, 2, 4, ..."""
    found = {k: _TUTORIAL_KEY.match(k) for k in arrays}
    unknown = sorted(k for k, m in found.items() if m is None)
    if unknown:
        raise HwnasError(f"{source} is not a once-for-all accuracy predictor: it has entries such as "
                         f"{unknown[:3]} where one holds 'layers.N...' and 'base_acc' (ofa.nas) or "
                         f"'0.weight', '0.bias', ... (ofa.tutorial); {_FIX}")
    indices = sorted({int(m.group(1)) for m in found.values() if m})
    if indices != list(range(0, 2 * len(indices), 2)) or any(
            f"{i}.weight" not in arrays or f"{i}.bias" not in arrays for i in indices):
        raise HwnasError(f"{source}: layers {indices} are not once-for-all's Linear/ReLU sequence "
                         f"(weight and bias at 0, 2, 4, ...); {_FIX}")
    return [arrays[f"{i}.weight"] for i in indices], [arrays[f"{i}.bias"] for i in indices]


def _arch_encoder_layers(arrays: dict[str, np.ndarray],
                         source: str) -> tuple[list[np.ndarray], list[np.ndarray | None], float]:
    """``layers.{i}.0`` hidden Linear layers (each then ReLU), ``layers.{n}`` output layer, ``base_acc``."""
    hidden = sorted({int(m.group(1)) for k in arrays if (m := _HIDDEN_KEY.match(k))})
    output = sorted({int(m.group(1)) for k in arrays if (m := _OUTPUT_KEY.match(k))})
    expected = {"base_acc", *(f"layers.{i}.0.{p}" for i in hidden for p in ("weight", "bias")),
                *(f"layers.{i}.weight" for i in output)} | ({f"layers.{i}.bias" for i in output} & set(arrays))
    if (hidden != list(range(len(hidden))) or output != [len(hidden)] or set(arrays) != expected):
        odd = sorted(set(arrays) ^ expected)[:3]
        raise HwnasError(f"{source} is not once-for-all's AccuracyPredictor state dict (hidden layers "
                         f"layers.0.0 .. layers.n-1.0, output layers.n, base_acc); differs at {odd}; {_FIX}")
    n = len(hidden)
    weights = [arrays[f"layers.{i}.0.weight"] for i in hidden] + [arrays[f"layers.{n}.weight"]]
    biases: list[np.ndarray | None] = [arrays[f"layers.{i}.0.bias"] for i in hidden]
    biases.append(arrays.get(f"layers.{n}.bias"))
    base = arrays["base_acc"]
    if base.size != 1:
        raise HwnasError(f"{source}: base_acc has {base.size} values, once-for-all stores one; {_FIX}")
    return weights, biases, float(base.reshape(-1)[0])


def _default_image_sizes(space: SearchSpace, n_inputs: int, source: str) -> tuple[int, ...]:
    n_res = n_inputs - space.num_block_slots * (len(space.kernel_sizes) + len(space.expand_ratios))
    if n_res == len(space.resolutions):
        return space.resolutions
    if n_res in OFA_DEFAULT_IMAGE_SIZES:
        return OFA_DEFAULT_IMAGE_SIZES[n_res]
    raise HwnasError(f"{source} takes {n_inputs} inputs, so its encoder had {n_res} image sizes; pass the "
                     f"MobileNetArchEncoder's image_size_list it was trained with (image_sizes=...)")
