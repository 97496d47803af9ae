"""Image data: the single place hwnas reads images (Fashion-MNIST IDX files or a user image folder).

Every split is held as one ``uint8`` tensor (N x C x H x W) plus ``int64`` labels, so a whole data
set costs little memory, moves to the GPU in one copy, and batches are cut, augmented, normalised
and resized there with vectorised tensor ops (:class:`DeviceLoader`). No per-image Python work
happens after loading, which is what keeps supernet training and BN recalibration fast.

The validation split is a fixed, stratified hold-out from the training images (same seed, same
split): it feeds BN recalibration and the accuracy-predictor data, so the official test set is
never looked at during search.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.errors import DataError

# ----------------------------------------------------------------------------------- IDX files

#: IDX dtype codes (third magic byte) -> big-endian numpy dtype.
IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, told apart by magic bytes) into a native-endian array.

    Validates the magic number, dtype code, dimension count and that the payload is exactly as large
    as the header says, so a truncated download fails here with the file named, not later as a
    shape error deep inside training.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror or exc}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"IDX file {path} is a corrupt or truncated gzip file ({exc}); "
                            f"download it again") from None
    return _parse_idx(raw, path)


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is too short ({len(raw)} bytes) to hold a header; "
                        f"it is truncated or not an IDX file")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"IDX file {path} has bad magic bytes {raw[:4].hex()} (expected 0000xxyy); "
                        f"it is not an IDX file")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise DataError(f"IDX file {path} has unknown dtype code 0x{code:02x}; "
                        f"valid codes are {', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}")
    if ndim < 1:
        raise DataError(f"IDX file {path} declares 0 dimensions; it is malformed")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header ({len(raw)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        what = "truncated" if actual < expected else "longer than its header says"
        raise DataError(f"IDX file {path} is {what}: header shape {shape} needs {expected} payload "
                        f"bytes, found {actual}; download it again")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


# ----------------------------------------------------------------------------------- containers

@dataclass
class Split:
    """One split: ``images`` uint8 (N x C x H x W) and ``labels`` int64 (N)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"split images must be a uint8 N x C x H x W tensor, got "
                            f"{self.images.dtype} with shape {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise DataError(f"split labels must be a 1-D int64 tensor, got {self.labels.dtype} "
                            f"with shape {tuple(self.labels.shape)}")
        if len(self.images) != len(self.labels):
            raise DataError(f"split has {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> tuple[int, int]:
        """Stored (height, width)."""
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def subset(self, indices: torch.Tensor | np.ndarray | Sequence[int]) -> "Split":
        """The images at ``indices`` (a copy), in that order."""
        if isinstance(indices, torch.Tensor):
            idx = indices.to(self.labels.device, torch.int64)
        else:
            idx = torch.from_numpy(np.asarray(indices, dtype=np.int64)).to(self.labels.device)
        return Split(self.images[idx], self.labels[idx])


@dataclass(frozen=True)
class FolderSplit:
    """A split of an image folder that stays on disk: its files and labels. :meth:`subset` decodes
    only the images a step asks for (export's calibration and evaluation images: a few thousand of
    an ImageNet-sized folder), with a progress bar; :meth:`select` narrows it without decoding."""

    files: tuple[Path, ...]
    labels: torch.Tensor
    in_channels: int
    size: tuple[int, int]  # (width, height) every image is resized to

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size[1], self.size[0]

    def select(self, indices: torch.Tensor | np.ndarray | Sequence[int]) -> "FolderSplit":
        idx = np.asarray(indices, dtype=np.int64)
        return FolderSplit(tuple(self.files[i] for i in idx), self.labels[torch.from_numpy(idx)], self.in_channels,
                           self.size)

    def subset(self, indices: torch.Tensor | np.ndarray | Sequence[int]) -> Split:
        """The images at ``indices``, decoded, in that order."""
        chosen = self.select(indices)
        return Split(_load_images(chosen.files, self.in_channels, self.size, "decoding images", bar_from=1),
                     chosen.labels)


@dataclass
class Dataset:
    """A data set ready for training: three splits plus what a model and loader need to know.

    Splits are :class:`Split` (decoded), or :class:`FolderSplit` (on disk) for an image folder
    opened with ``decode=False``; then ``mean``/``std`` are estimated on a sample of its images."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    in_channels: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def image_size(self) -> int:
        """Stored image side length (images are square unless a folder had non-square images)."""
        return self.train.image_size[0]

    def loader(self, split: str | Split, **kwargs) -> "DeviceLoader":
        """A :class:`DeviceLoader` over ``split`` ("train", "val", "test" or a Split) with this data set's
        normalisation; ``kwargs`` go to :class:`DeviceLoader`."""
        if isinstance(split, str):
            if split not in ("train", "val", "test"):
                raise DataError(f"unknown split {split!r}; choose 'train', 'val' or 'test'")
            split = getattr(self, split)
        return DeviceLoader(split, mean=self.mean, std=self.std, **kwargs)

    def summary(self) -> str:
        """One line for logs: name, split sizes, image shape."""
        h, w = self.train.image_size
        return (f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test, "
                f"{self.in_channels}x{h}x{w}, {self.num_classes} classes")


# ----------------------------------------------------------------------------------- splitting

def _holdout_counts(class_counts: np.ndarray, n_holdout: int) -> np.ndarray:
    """Per-class hold-out counts proportional to class size (largest remainder), never taking a
    class's last image, so every class stays in the remaining split."""
    capacity = np.maximum(class_counts - 1, 0)
    if n_holdout > capacity.sum():
        raise DataError(f"cannot hold out {n_holdout} of {class_counts.sum()} images while keeping at least "
                        f"one image per class in training; use a smaller val/test size or add images")
    exact = n_holdout * class_counts / max(class_counts.sum(), 1)
    counts = np.minimum(np.floor(exact).astype(np.int64), capacity)
    remainder = exact - counts
    while counts.sum() < n_holdout:  # at most num_classes rounds
        room = counts < capacity
        order = np.lexsort((np.arange(len(counts)), -np.where(room, remainder, -np.inf)))
        take = [c for c in order if room[c]][: n_holdout - counts.sum()]
        counts[take] += 1
        remainder[take] = -1.0
    return counts


def stratified_holdout(labels: np.ndarray, n_holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, holdout), stratified by label, fixed by ``seed``; both sorted."""
    labels = np.asarray(labels)
    if n_holdout == 0:
        return np.arange(len(labels)), np.arange(0)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(labels))
    perm = perm[np.argsort(labels[perm], kind="stable")]  # grouped by class, random within class
    classes, starts, counts = np.unique(labels[perm], return_index=True, return_counts=True)
    take = _holdout_counts(counts, n_holdout)
    holdout = np.concatenate([perm[s:s + t] for s, t in zip(starts, take)])
    mask = np.zeros(len(labels), dtype=bool)
    mask[holdout] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _resolve_size(size: int | float, total: int, what: str) -> int:
    """``size`` as an image count: an int is a count, a float in (0, 1) a fraction of ``total``."""
    if isinstance(size, float) and 0 < size < 1:
        return int(round(size * total))
    if isinstance(size, float) and not size.is_integer():
        raise DataError(f"{what} = {size} is neither a fraction in (0, 1) nor a whole image count")
    n = int(size)
    if n < 0 or n >= total:
        raise DataError(f"{what} = {n} images is out of range for {total} training images; "
                        f"pass a count in [0, {total}) or a fraction in (0, 1)")
    return n


# ----------------------------------------------------------------------------------- statistics

def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std (pixel values scaled to [0, 1]) of a uint8 N x C x H x W tensor.

    Uses a 256-bin histogram per channel, so it is exact and needs no float copy of the data.
    """
    if len(images) == 0:
        raise DataError("cannot compute normalisation constants from an empty training split")
    channels = images.shape[1]
    hist = torch.zeros(channels, 256, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        block = images[start:start + chunk].cpu()
        for c in range(channels):
            hist[c] += torch.bincount(block[:, c].reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    n = hist.sum(dim=1)
    mean = (hist * values).sum(dim=1) / n
    var = (hist * (values[None, :] - mean[:, None]) ** 2).sum(dim=1) / n
    std = var.sqrt().clamp_min(1e-6)  # a constant channel must not divide by zero
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize a stored uint8 split to ``size`` x ``size`` (antialiased bilinear), still uint8."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty(len(images), images.shape[1], size, size, dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        block = resize_batch(images[start:start + chunk].float(), size)
        out[start:start + chunk] = block.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _check_shape_options(in_channels: int | None, image_size: int | None) -> None:
    if in_channels is not None and in_channels not in (1, 3):
        raise DataError(f"in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}")
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {image_size}")


def _set_channels(images: torch.Tensor, in_channels: int) -> torch.Tensor:
    if images.shape[1] == in_channels:
        return images
    if images.shape[1] == 1:
        return images.expand(-1, in_channels, -1, -1).contiguous()
    if in_channels == 1:  # ITU-R 601-2 luma, as Pillow's convert("L")
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise DataError(f"cannot convert {images.shape[1]}-channel images to {in_channels} channels")


# ----------------------------------------------------------------------------------- Fashion-MNIST

FASHION_MNIST_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "HWNAS_FASHION_MNIST_DIR"
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FASHION_MNIST_NAMES = {"fashion-mnist", "fashion_mnist", "fashionmnist", "fmnist"}


def fashion_mnist_dir(root: str | Path | None = None) -> Path:
    """Where the Fashion-MNIST files are: ``root`` if given, else $HWNAS_FASHION_MNIST_DIR, else the
    system package's location."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env).expanduser() if env else FASHION_MNIST_DEFAULT_DIR


def _is_fashion_mnist_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in FASHION_MNIST_FILES.values())


def read_fashion_mnist(root: str | Path | None = None) -> dict[str, np.ndarray]:
    """The four Fashion-MNIST arrays (keys of :data:`FASHION_MNIST_FILES`), checked for consistency."""
    root = fashion_mnist_dir(root)
    missing = [name for name in FASHION_MNIST_FILES.values() if not (root / name).is_file()]
    if missing:
        raise DataError(f"Fashion-MNIST not found in {root} (missing {', '.join(missing)}); "
                        f"install it with: apt-get install dataset-fashion-mnist "
                        f"(or set {FASHION_MNIST_ENV})")
    arrays = {key: read_idx(root / name) for key, name in FASHION_MNIST_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        where = root / FASHION_MNIST_FILES[f"{part}_images"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{where} should hold uint8 N x H x W images, found {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{root / FASHION_MNIST_FILES[f'{part}_labels']} has {labels.shape} labels "
                            f"for {len(images)} images; the files do not belong together")
        if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
            raise DataError(f"{root / FASHION_MNIST_FILES[f'{part}_labels']} has labels outside 0..9")
    return arrays


def load_fashion_mnist(root: str | Path | None = None, *, val_size: int | float = 5000, seed: int = 0,
                       in_channels: int | None = None, image_size: int | None = None) -> Dataset:
    """Fashion-MNIST with a stratified ``val_size`` hold-out from the 60k training images."""
    in_channels = 1 if in_channels is None else in_channels
    size = 28 if image_size is None else image_size
    _check_shape_options(in_channels, size)
    arrays = read_fashion_mnist(root)

    def prepare(images: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(images).unsqueeze(1)
        return _set_channels(_resize_uint8(tensor, size), in_channels)

    train_images = prepare(arrays["train_images"])
    train_labels = torch.from_numpy(arrays["train_labels"].astype(np.int64))
    n_val = _resolve_size(val_size, len(train_labels), "val_size")
    keep, held = stratified_holdout(arrays["train_labels"], n_val, seed)
    full = Split(train_images, train_labels)
    train = full.subset(keep)
    mean, std = channel_stats(train.images)
    test = Split(prepare(arrays["test_images"]), torch.from_numpy(arrays["test_labels"].astype(np.int64)))
    return Dataset(name="fashion-mnist", train=train, val=full.subset(held), test=test,
                   num_classes=len(FASHION_MNIST_CLASSES), in_channels=in_channels,
                   class_names=FASHION_MNIST_CLASSES, mean=mean, std=std)


# ----------------------------------------------------------------------------------- image folders

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".ppm", ".pgm", ".pbm"})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_SPLIT_DIRS = ("train", "val", "test")
# training images whose channel statistics stand for a folder kept on disk (decode=False): the mean
# of 2,000 images is within about 1/255 of the whole folder's for natural images
STATS_SAMPLE = 2000


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_classes(root: Path, class_names: Sequence[str] | None = None) -> tuple[list[str], list[Path], np.ndarray]:
    """Class folder names, image files and labels under ``root/<class>/``; labels index ``class_names``
    (train's classes when scanning val/test, so the numbering agrees)."""
    dirs = _subdirs(root)
    if not dirs:
        raise DataError(f"no class folders in {root}; expected {root}/<class_name>/<image files>")
    names = [d.name for d in dirs] if class_names is None else list(class_names)
    unknown = [d.name for d in dirs if d.name not in names]
    if unknown:
        raise DataError(f"{root} has class folders {unknown} that the training folder lacks; "
                        f"every class must have training images")
    files: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        images = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise DataError(f"class folder {d} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                            f"add images or remove the folder")
        files += images
        labels += [names.index(d.name)] * len(images)
    return names, files, np.asarray(labels, dtype=np.int64)


def _probe_images(files: Sequence[Path]) -> tuple[set[str], set[tuple[int, int]]]:
    """Modes and sizes of ``files`` from their headers only (cheap), naming any unreadable file."""
    from PIL import Image
    from tqdm import tqdm

    modes, sizes = set(), set()
    for path in tqdm(files, desc="reading image headers", unit="img", leave=False, disable=len(files) < 5000):
        try:
            with Image.open(path) as img:
                modes.add(img.mode)
                sizes.add(img.size)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {path}: {exc}; fix or remove the file") from None
    return modes, sizes


def _load_images(files: Sequence[Path], in_channels: int, size: tuple[int, int], desc: str,
                 bar_from: int = 1000) -> torch.Tensor:
    """Decode, convert and resize ``files`` into one uint8 N x C x H x W tensor (a progress bar from
    ``bar_from`` files on)."""
    from PIL import Image
    from tqdm import tqdm

    width, height = size
    out = np.empty((len(files), height, width, in_channels), dtype=np.uint8)
    mode = "L" if in_channels == 1 else "RGB"
    for i, path in enumerate(tqdm(files, desc=desc, unit="img", leave=False, disable=len(files) < bar_from)):
        try:
            with Image.open(path) as img:
                img = img.convert(mode)
                if img.size != (width, height):
                    img = img.resize((width, height), Image.Resampling.BILINEAR)  # antialiased when shrinking
                out[i] = np.asarray(img).reshape(height, width, in_channels)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {path}: {exc}; fix or remove the file") from None
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _folder_layout(root: Path) -> dict[str, Path]:
    """``{"train": ..., "val"?: ..., "test"?: ...}`` for a split layout, ``{"all": root}`` for a flat one."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder; pass 'fashion-mnist' or "
                        f"a folder laid out as <root>/<class>/<images> or <root>/train/<class>/<images>")
    names = {d.name for d in _subdirs(root)}
    if "train" not in names:
        return {"all": root}
    extra = names - set(_SPLIT_DIRS)
    if extra:
        raise DataError(f"{root} mixes split folders (train/val/test) with other folders {sorted(extra)}; "
                        f"move class folders under {root}/train")
    return {name: root / name for name in _SPLIT_DIRS if name in names}


def load_image_folder(root: str | Path, *, val_size: int | float = 0.1, test_size: int | float = 0.1,
                      seed: int = 0, in_channels: int | None = None,
                      image_size: int | None = None, decode: bool = True,
                      mixed_size: int | None = None) -> Dataset:
    """A data set from ``root/<class>/*`` or ``root/train/<class>/*`` (+ optional ``root/val``, ``root/test``).

    Splits not given as folders are stratified hold-outs from the training images (sizes relative to
    the training folder). ``in_channels`` defaults to 1 when every image is grayscale, else 3;
    ``image_size`` defaults to the images' own size when they all share one, else to ``mixed_size``
    (if given). ``decode=False`` keeps the splits on disk (:class:`FolderSplit`): the same files and
    the same split, but only the images a step takes are ever decoded; mean and std are then
    estimated on :data:`STATS_SAMPLE` training images.
    """
    _check_shape_options(in_channels, image_size)
    root = Path(root).expanduser()
    layout = _folder_layout(root)
    pool_dir = layout.get("train", layout.get("all"))
    class_names, files, labels = _scan_classes(pool_dir)
    given = {name: _scan_classes(layout[name], class_names)[1:] for name in ("val", "test") if name in layout}

    all_files = files + [f for fs, _ in given.values() for f in fs]
    modes, sizes = _probe_images(all_files)
    if in_channels is None:
        in_channels = 1 if modes <= _GRAY_MODES else 3
    if image_size is not None:
        size = (image_size, image_size)
    elif len(sizes) == 1:
        size = next(iter(sizes))
    elif mixed_size is not None:
        size = (mixed_size, mixed_size)
    else:
        raise DataError(f"images under {root} have {len(sizes)} different sizes (e.g. {sorted(sizes)[:3]}); "
                        f"pass image_size (--image-size) to resize them all to one square size")

    def split_of(paths: Sequence[Path], split_labels: np.ndarray, name: str) -> Split | FolderSplit:
        on_disk = FolderSplit(tuple(paths), torch.from_numpy(split_labels), in_channels, size)
        if not decode:
            return on_disk
        return Split(_load_images(paths, in_channels, size, f"loading {name} images"), on_disk.labels)

    pool = split_of(files, labels, "train")
    rest = np.arange(len(labels))
    held: dict[str, np.ndarray] = {}
    for stream, name, amount in ((1, "test", test_size), (2, "val", val_size)):
        if name in given:
            continue
        n = _resolve_size(amount, len(labels), f"{name}_size")
        keep, out = stratified_holdout(labels[rest], n, seed * 1000 + stream)
        held[name], rest = rest[out], rest[keep]
    narrow = pool.subset if decode else pool.select
    splits = {name: narrow(idx) for name, idx in held.items()}
    splits.update({name: split_of(fs, lb, name) for name, (fs, lb) in given.items()})
    train = narrow(rest)
    mean, std = channel_stats(train.images if decode else calibration_subset(train, STATS_SAMPLE, seed).images)
    return Dataset(name=root.name, train=train, val=splits["val"], test=splits["test"],
                   num_classes=len(class_names), in_channels=in_channels, class_names=tuple(class_names),
                   mean=mean, std=std)


# ----------------------------------------------------------------------------------- entry point

def load_dataset(source: str | Path = "fashion-mnist", *, val_size: int | float | None = None, seed: int = 0,
                 in_channels: int | None = None, image_size: int | None = None,
                 test_size: int | float | None = None, decode: bool = True,
                 mixed_size: int | None = None) -> Dataset:
    """Load ``source``: "fashion-mnist" (from :func:`fashion_mnist_dir`), a folder holding the four
    Fashion-MNIST IDX files, or an image folder (see :func:`load_image_folder`; ``decode`` and
    ``mixed_size`` apply to folders only: Fashion-MNIST is small and always decoded).

    ``val_size``/``test_size``: an image count or a fraction of the training images; ``val_size``
    defaults to 5000 for Fashion-MNIST and 0.1 for folders. ``test_size`` (default 0.1) applies only
    to image folders without a ``test`` folder; Fashion-MNIST keeps its official test set.
    """
    options = dict(seed=seed, in_channels=in_channels, image_size=image_size)
    path = Path(str(source)).expanduser()
    if str(source).lower() in _FASHION_MNIST_NAMES or _is_fashion_mnist_dir(path):
        if test_size is not None:
            raise DataError("Fashion-MNIST has an official test set; test_size applies to image folders only")
        root = None if str(source).lower() in _FASHION_MNIST_NAMES else path
        return load_fashion_mnist(root, val_size=5000 if val_size is None else val_size, **options)
    return load_image_folder(path, val_size=0.1 if val_size is None else val_size,
                             test_size=0.1 if test_size is None else test_size, decode=decode,
                             mixed_size=mixed_size, **options)


def calibration_subset(split: Split | FolderSplit, n_images: int, seed: int = 0) -> Split:
    """A fixed random subset of ``n_images`` (all of them if fewer) for BN recalibration: the same
    seed gives the same images, so recalibrated accuracies of different subnets are comparable.
    A split on disk is decoded for exactly those images."""
    if n_images <= 0:
        raise DataError(f"calibration subset needs a positive image count, got {n_images}")
    if n_images >= len(split):
        return split if isinstance(split, Split) else split.subset(np.arange(len(split)))
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(split), generator=generator)[:n_images].sort().values
    return split.subset(idx)


# ----------------------------------------------------------------------------------- batching

def resize_batch(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize a float N x C x H x W batch to ``resolution`` x ``resolution`` (antialiased bilinear);
    a no-op when it already has that size. Used per batch for elastic-resolution training."""
    if x.shape[-2:] == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)


def _to_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_crop_padding(image_size: tuple[int, int]) -> int:
    """2 px of padding for the random crop of images up to 32 px, else 4."""
    return 2 if max(image_size) <= 32 else 4


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int,
                     hflip: bool = True) -> torch.Tensor:
    """Random crop of the zero-padded images plus random horizontal flip, as one gather.

    The one augmentation of hwnas (training, loaders): ``generator`` is a CPU generator, so the
    draws are the same on every device.
    """
    device = images.device
    n, _, h, w = images.shape
    p = padding
    padded = F.pad(images, (p, p, p, p)) if p else images
    dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(device)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(device)
    rows = dy[:, None] + torch.arange(h, device=device)  # n x h
    cols = torch.arange(w, device=device).expand(n, w)
    if hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(device)
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    cols = dx[:, None] + cols  # n x w
    batch = torch.arange(n, device=device)[:, None, None, None]
    chan = torch.arange(images.shape[1], device=device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


class DeviceLoader:
    """Batches of a :class:`Split` kept on ``device``: the uint8 images are copied there once, and each
    batch is gathered, augmented, normalised and resized there with tensor ops.

    Yields ``(x, y)``: ``x`` float32 N x C x R x R normalised with ``mean``/``std``, ``y`` int64.
    ``resolution`` (None: the stored size) is read for every batch, so a trainer may change it
    between batches (elastic resolution). With ``shuffle`` each pass draws a new order from a
    ``torch.Generator`` seeded with ``seed``: the sequence of epochs is reproducible, on any device.
    ``augment`` adds a random crop from a zero-padded image (``crop_padding`` px; default 2 for images
    up to 32 px, else 4) and a random horizontal flip, both vectorised over the batch.
    """

    def __init__(self, split: Split, *, mean: Sequence[float], std: Sequence[float], batch_size: int = 256,
                 device: torch.device | str | None = None, resolution: int | None = None,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False, augment: bool = False,
                 crop_padding: int | None = None, hflip: bool = True, channels_last: bool = False) -> None:
        channels = split.images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise DataError(f"mean/std have {len(mean)}/{len(std)} entries for {channels}-channel images")
        if batch_size <= 0:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        self.device = _to_device(device)
        self.images = split.images.to(self.device, non_blocking=True)
        self.labels = split.labels.to(self.device, non_blocking=True)
        self.batch_size = batch_size
        self.resolution = resolution
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.hflip = hflip
        self.crop_padding = default_crop_padding(split.image_size) if crop_padding is None else crop_padding
        self.channels_last = channels_last
        self.generator = torch.Generator().manual_seed(seed)  # CPU: same order on every device
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)  # (x / 255 - mean) / std as one fused multiply-add
        self._shift = -mean_t / std_t

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for b in range(len(self)):
            start = b * self.batch_size
            if order is None:
                images = self.images[start:start + self.batch_size]
                labels = self.labels[start:start + self.batch_size]
            else:
                idx = order[start:start + self.batch_size].to(self.device, non_blocking=True)
                images, labels = self.images[idx], self.labels[idx]
            yield self.prepare(images), labels

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> (augmented) normalised float32 batch at the current resolution."""
        if self.augment:
            images = self._crop_flip(images)
        x = torch.addcmul(self._shift, images.float(), self._scale)
        if self.resolution is not None:
            x = resize_batch(x, self.resolution)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _crop_flip(self, images: torch.Tensor) -> torch.Tensor:
        return random_crop_flip(images, self.generator, self.crop_padding, self.hflip)
