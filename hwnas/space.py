"""Search spaces as data: a named preset fully describes an elastic supernet.

Everything downstream (supernet construction, FLOPs, latency-table keys, predictor encodings)
is derived from a :class:`SearchSpace`, and its :meth:`SearchSpace.fingerprint` is stamped into
every artifact so a table or predictor built for one space is never silently used with another.

Presets live in a small registry in the style of timm's model registry: ``register_space`` adds
one, ``get_space`` looks one up by name with a helpful error listing what exists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hwnas.errors import SpaceError

ACTIVATIONS = ("relu", "relu6", "hswish")
# A family is a kind of network with one supernet builder (hwnas.supernet.network.build_supernet);
# everything that differs between the spaces of one family is data in the space (widths, strides,
# per-stage SE / activation / depth choices, the head's widths and activation).
FAMILIES = ("mbconv", "resnet", "plain")
# Fields added after artifacts were shipped: left out of to_dict() (and so of the fingerprint)
# while they hold these defaults, so every existing table, predictor and checkpoint keeps its
# fingerprint.
_LATER_DEFAULTS: dict[str, Any] = {"family": "mbconv", "head_act": "hswish"}
_LATER_STAGE_DEFAULTS: dict[str, Any] = {"depths": None}
_LATER_PLAIN_DEFAULTS: dict[str, Any] = {"head": "global", "head_hidden": 0, "residual": False}
PLAIN_HEADS = ("global", "flatten")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping >10% (as MobileNet/OFA do)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


@dataclass(frozen=True)
class StageSpec:
    """One elastic stage: ``width`` output channels, first-block ``stride``, SE and activation.

    ``depths`` overrides the space's depth choices for this stage (ProxylessNAS's last stage is
    always one block); ``None`` means the space's ``depths``.
    """

    width: int
    stride: int
    se: bool
    act: str
    depths: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.depths is not None:
            depths = tuple(sorted(int(d) for d in self.depths))
            if not depths or min(depths) < 1 or len(set(depths)) != len(depths):
                raise SpaceError(f"stage depths must be distinct values >= 1, got {self.depths}")
            object.__setattr__(self, "depths", depths)
        if self.width <= 0:
            raise SpaceError(f"stage width must be positive, got {self.width}")
        if self.stride not in (1, 2):
            raise SpaceError(f"stage stride must be 1 or 2, got {self.stride}")
        if self.act not in ACTIVATIONS:
            raise SpaceError(f"stage activation {self.act!r} is not one of {ACTIVATIONS}")


@dataclass(frozen=True)
class SearchSpace:
    """An OFA-style elastic space of the ``mbconv`` family (MobileNetV3, ProxylessNAS).

    Fixed parts: stem conv, a first MBConv block (expand 1, kernel 3), the final 1x1 expand conv
    (BN + ``head_act``), global pooling, the feature-mix 1x1 conv (no BN, ``head_act``; absent
    when ``feature_width`` is 0, as in ProxylessNAS) and the classifier. Elastic parts: per block
    kernel size and expand ratio, per stage depth, and the input resolution.
    """

    name: str
    in_channels: int
    num_classes: int
    stem_width: int
    stem_stride: int
    stem_act: str
    first_block_width: int
    first_block_act: str
    stages: tuple[StageSpec, ...]
    final_expand_width: int
    feature_width: int
    resolutions: tuple[int, ...]
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    dropout: float = 0.1
    se_reduction: int = 4
    channel_divisor: int = 8
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    family: str = "mbconv"
    head_act: str = "hswish"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(
            s if isinstance(s, StageSpec) else StageSpec(**s) for s in self.stages))
        for attr in ("resolutions", "kernel_sizes", "expand_ratios", "depths"):
            values = tuple(int(v) for v in getattr(self, attr))
            if not values:
                raise SpaceError(f"space {self.name!r}: {attr} must not be empty")
            if len(set(values)) != len(values):
                raise SpaceError(f"space {self.name!r}: {attr} has duplicates: {values}")
            object.__setattr__(self, attr, tuple(sorted(values)))
        if not self.stages:
            raise SpaceError(f"space {self.name!r}: needs at least one stage")
        if any(k % 2 == 0 or k < 1 for k in self.kernel_sizes):
            raise SpaceError(f"space {self.name!r}: kernel sizes must be odd, got {self.kernel_sizes}")
        if min(self.depths) < 1:
            raise SpaceError(f"space {self.name!r}: depths must be >= 1, got {self.depths}")
        if min(self.expand_ratios) < 1:
            raise SpaceError(f"space {self.name!r}: expand ratios must be >= 1")
        if self.family != "mbconv":
            raise SpaceError(f"space {self.name!r}: a SearchSpace is of the 'mbconv' family; "
                             f"{self.family!r} spaces have their own description (ResNetSpace for 'resnet')")
        if any(act not in ACTIVATIONS for act in (self.stem_act, self.first_block_act, self.head_act)):
            raise SpaceError(f"space {self.name!r}: activations must be one of {ACTIVATIONS}")
        if self.stem_stride not in (1, 2):
            raise SpaceError(f"space {self.name!r}: stem stride must be 1 or 2")
        if min(self.resolutions) < 8:
            raise SpaceError(f"space {self.name!r}: resolutions must be >= 8 px")
        for attr in ("in_channels", "num_classes", "stem_width", "first_block_width", "final_expand_width"):
            if int(getattr(self, attr)) <= 0:
                raise SpaceError(f"space {self.name!r}: {attr} must be positive")
        if int(self.feature_width) < 0:
            raise SpaceError(f"space {self.name!r}: feature_width must be positive, or 0 for no feature-mix conv")

    # ----------------------------------------------------------------------------- shape facts
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def max_depth(self) -> int:
        return max(max(self.stage_depths(i)) for i in range(self.num_stages))

    def stage_depths(self, stage: int) -> tuple[int, ...]:
        """Depth choices of one stage: its own ``depths`` or the space's."""
        own = self.stages[stage].depths
        return self.depths if own is None else own

    @property
    def num_block_slots(self) -> int:
        """Elastic block slots: ``num_stages * max_depth`` (inactive slots are ignored; a stage whose
        depth choices stop below ``max_depth`` has slots that are never active)."""
        return self.num_stages * self.max_depth

    @property
    def max_kernel(self) -> int:
        return max(self.kernel_sizes)

    def mid_channels(self, in_channels: int, expand: int) -> int:
        """Hidden width of an MBConv block, exactly as OFA computes it."""
        return make_divisible(round(in_channels * expand), self.channel_divisor)

    def se_channels(self, channels: int) -> int:
        return make_divisible(channels // self.se_reduction, self.channel_divisor)

    def stage_in_width(self, stage: int) -> int:
        return self.first_block_width if stage == 0 else self.stages[stage - 1].width

    # ----------------------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        data = _without_later_defaults(asdict(self), _LATER_DEFAULTS)
        data["stages"] = [_without_later_defaults(asdict(s), _LATER_STAGE_DEFAULTS) for s in self.stages]
        for st in data["stages"]:
            if "depths" in st:
                st["depths"] = list(st["depths"])
        for attr in ("resolutions", "kernel_sizes", "expand_ratios", "depths"):
            data[attr] = list(data[attr])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSpace":
        try:
            return cls(**data)
        except TypeError as exc:
            raise SpaceError(f"malformed search-space description: {exc}") from None

    def fingerprint(self) -> str:
        """Short stable hash of everything that changes the network (not the name or description)."""
        data = self.to_dict()
        data.pop("name")
        data.pop("description")
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def check_fingerprint(self, fingerprint: str, what: str) -> None:
        """Refuse an artifact built for another space (or a changed version of this one)."""
        if fingerprint != self.fingerprint():
            raise SpaceError(
                f"{what} was built for a different search space (fingerprint {fingerprint}, "
                f"space {self.name!r} is {self.fingerprint()}). Rebuild it for this space, "
                f"or pass the space it was made for.")


def _without_later_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``data`` less the later-added fields that hold their defaults (see ``_LATER_DEFAULTS``)."""
    return {k: v for k, v in data.items() if not (k in defaults and v == defaults[k])}


@dataclass(frozen=True)
class ResNetSpace:
    """once-for-all's elastic ResNet (the ``resnet`` family): bottleneck blocks, no kernel choice.

    Fixed parts: the input stem (3x3 conv stride 2, a 3x3 conv with identity shortcut that depth
    ``d[0]`` can skip, a 3x3 conv), 3x3 max pooling, global pooling and the classifier. Elastic
    parts: per stage ``base_depths[i] + d`` blocks (``d`` from ``depths``), per block the expand
    ratio (hidden width = that share of the block's output width), per stage and for the two stem
    convs a width multiplier, and the input resolution. A stage's first block downsamples its
    shortcut by average pooling and a 1x1 conv (``avgpool_conv`` in once-for-all).
    """

    name: str
    in_channels: int
    num_classes: int
    stem_width: int
    stage_widths: tuple[int, ...]
    stage_strides: tuple[int, ...]
    base_depths: tuple[int, ...]
    resolutions: tuple[int, ...]
    depths: tuple[int, ...] = (0, 1, 2)
    expand_ratios: tuple[float, ...] = (0.2, 0.25, 0.35)
    width_mults: tuple[float, ...] = (0.65, 0.8, 1.0)
    dropout: float = 0.0
    channel_divisor: int = 8
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    family: str = "resnet"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for attr, kind in (("stage_widths", int), ("stage_strides", int), ("base_depths", int),
                           ("resolutions", int), ("depths", int), ("expand_ratios", float), ("width_mults", float)):
            values = tuple(kind(v) for v in getattr(self, attr))
            if not values:
                raise SpaceError(f"space {self.name!r}: {attr} must not be empty")
            if attr not in ("stage_widths", "stage_strides", "base_depths"):
                if len(set(values)) != len(values):
                    raise SpaceError(f"space {self.name!r}: {attr} has duplicates: {values}")
                values = tuple(sorted(values))
            object.__setattr__(self, attr, values)
        if self.family != "resnet":
            raise SpaceError(f"space {self.name!r}: a ResNetSpace is of the 'resnet' family, not {self.family!r}")
        if not len(self.stage_widths) == len(self.stage_strides) == len(self.base_depths):
            raise SpaceError(f"space {self.name!r}: stage_widths, stage_strides and base_depths need one entry per stage")
        if any(s not in (1, 2) for s in self.stage_strides):
            raise SpaceError(f"space {self.name!r}: stage strides must be 1 or 2, got {self.stage_strides}")
        if min(self.depths) < 0 or min(self.base_depths) < 1:
            raise SpaceError(f"space {self.name!r}: extra depths must be >= 0 and base depths >= 1")
        if min(self.expand_ratios) <= 0 or min(self.width_mults) <= 0:
            raise SpaceError(f"space {self.name!r}: expand ratios and width multipliers must be positive")
        if min(self.resolutions) < 32:
            raise SpaceError(f"space {self.name!r}: resolutions must be >= 32 px (stem, pooling and 3 strided stages)")
        for stage, stride in enumerate(self.stage_strides):
            if stride == 1 and self.stage_widths[stage] == self.stage_input_width(stage):
                # the stage's first block then gets an identity shortcut (hwnas.resnet_arch.block_positions,
                # as once-for-all), which breaks every subnet whose width choices on its two sides differ
                raise SpaceError(f"space {self.name!r}: stage {stage} has stride 1 and the width of its input "
                                 f"({self.stage_widths[stage]}), so its first block's shortcut would be an identity "
                                 "that breaks subnets of unequal widths; choose a different width for the stage or "
                                 "for what precedes it (stem_width for stage 0)")

    # ----------------------------------------------------------------------------- shape facts
    @property
    def num_stages(self) -> int:
        return len(self.stage_widths)

    @property
    def stage_max_blocks(self) -> tuple[int, ...]:
        return tuple(b + max(self.depths) for b in self.base_depths)

    @property
    def num_blocks(self) -> int:
        """Blocks the supernet holds (one expand ratio each; once-for-all's ``e`` list)."""
        return sum(self.stage_max_blocks)

    @property
    def num_width_choices(self) -> int:
        """Width genes: the two stem convs, then one per stage (once-for-all's ``w`` list)."""
        return 2 + self.num_stages

    def width(self, base: int, mult_index: int) -> int:
        return make_divisible(base * self.width_mults[mult_index], self.channel_divisor)

    def stem_widths(self, w0: int, w1: int) -> tuple[int, int]:
        """(first two stem convs' width, the last stem conv's width) for width choices ``w0``, ``w1``."""
        return (make_divisible(self.width(self.stem_width, w0) // 2, self.channel_divisor),
                self.width(self.stem_width, w1))

    def stage_input_width(self, stage: int) -> int:
        """Base (multiplier 1) width entering a stage: the stem's for stage 0, else the previous stage's."""
        return self.stem_width if stage == 0 else self.stage_widths[stage - 1]

    def stage_width(self, stage: int, mult_index: int) -> int:
        return self.width(self.stage_widths[stage], mult_index)

    def mid_channels(self, out_channels: int, expand: float) -> int:
        """Hidden width of a bottleneck block, exactly as once-for-all computes it."""
        return make_divisible(round(out_channels * expand), self.channel_divisor)

    # ----------------------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for attr in ("stage_widths", "stage_strides", "base_depths", "resolutions", "depths", "expand_ratios",
                     "width_mults"):
            data[attr] = list(data[attr])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResNetSpace":
        try:
            return cls(**data)
        except TypeError as exc:
            raise SpaceError(f"malformed search-space description: {exc}") from None

    fingerprint = SearchSpace.fingerprint
    check_fingerprint = SearchSpace.check_fingerprint


@dataclass(frozen=True)
class PlainSpace:
    """A plain VGG-style elastic CNN (the ``plain`` family): stages of k x k conv + BN + ReLU.

    Built for small images on CPUs, where dense convolutions run far more MACs per millisecond than
    depthwise MBConv blocks (ONNX Runtime, one core: the four-conv ``small-cnn`` reference ran in
    0.35 ms, as long as MobileNetV3 subnets of 1.5-5 M MACs; ``experiments/results/reference_models.json``,
    ``quickstart.json``). Fixed parts: 2x2 max
    pooling before every stage but the first, global average pooling, dropout and the classifier.
    Elastic parts: per stage ``base_depths[i] + d`` conv layers (``d`` from ``depths``), per layer the
    kernel size, per stage a width multiplier (every layer of a stage has the stage's width, so a
    layer's input and output widths are fixed by the width genes alone: latency and MACs add up per
    layer), and the input resolution.
    """

    name: str
    in_channels: int
    num_classes: int
    stage_widths: tuple[int, ...]
    base_depths: tuple[int, ...]
    resolutions: tuple[int, ...]
    depths: tuple[int, ...] = (0, 1, 2)
    # The kernel-size choice (one per layer) defaults to 3x3 only. (3, 5) doubles the sandwich step
    # (1.24 s vs 0.55 s, batch 256, two threads: experiments/results/plain_step_time.json); (1, 3) made
    # the smallest subnet all 1x1 convs, which stayed at 40 % validation accuracy from the second to the
    # fifth epoch (experiments/results/train_fmnist_cnn_k13_stopped/).
    kernel_sizes: tuple[int, ...] = (3,)
    width_mults: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    dropout: float = 0.0
    channel_divisor: int = 8
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    family: str = "plain"
    description: str = field(default="", compare=False)
    head: str = "global"
    head_hidden: int = 0
    # An identity skip around every layer but a stage's first (those keep their input's width and
    # size): relu(x + BN(conv(x))). Elastic depth needs it: without skips, a stage cut short feeds
    # its first layer's features to a consumer trained on its third layer's, and the shipped
    # fmnist-vgg supernet lost 1.1-2.5 test points for each layer dropped from its largest subnet
    # (93.9 % -> 91.4 % for one layer fewer in stage 2), against 0.6-0.9 for one width step less;
    # fmnist-resvgg's lose 0.28-0.54 (experiments/results/depth_sensitivity.json).
    residual: bool = False

    def __post_init__(self) -> None:
        for attr, kind in (("stage_widths", int), ("base_depths", int), ("resolutions", int), ("depths", int),
                           ("kernel_sizes", int), ("width_mults", float)):
            values = tuple(kind(v) for v in getattr(self, attr))
            if not values:
                raise SpaceError(f"space {self.name!r}: {attr} must not be empty")
            if attr not in ("stage_widths", "base_depths"):
                if len(set(values)) != len(values):
                    raise SpaceError(f"space {self.name!r}: {attr} has duplicates: {values}")
                values = tuple(sorted(values))
            object.__setattr__(self, attr, values)
        if self.family != "plain":
            raise SpaceError(f"space {self.name!r}: a PlainSpace is of the 'plain' family, not {self.family!r}")
        if len(self.stage_widths) != len(self.base_depths):
            raise SpaceError(f"space {self.name!r}: stage_widths and base_depths need one entry per stage")
        if min(self.depths) < 0 or min(self.base_depths) < 1:
            raise SpaceError(f"space {self.name!r}: extra depths must be >= 0 and base depths >= 1")
        if any(k % 2 == 0 or k < 1 for k in self.kernel_sizes):
            raise SpaceError(f"space {self.name!r}: kernel sizes must be odd, got {self.kernel_sizes}")
        if min(self.width_mults) <= 0:
            raise SpaceError(f"space {self.name!r}: width multipliers must be positive")
        smallest = min(self.resolutions) >> (self.num_stages - 1)
        if smallest < 1:
            raise SpaceError(f"space {self.name!r}: resolution {min(self.resolutions)} is too small for "
                             f"{self.num_stages} stages (each after the first halves it); use fewer stages or "
                             "larger resolutions")
        self._check_head()

    def _check_head(self) -> None:
        if self.head not in PLAIN_HEADS:
            raise SpaceError(f"space {self.name!r}: head must be one of {PLAIN_HEADS}, got {self.head!r}")
        if not isinstance(self.residual, bool):
            raise SpaceError(f"space {self.name!r}: residual must be true or false, got {self.residual!r}")
        if int(self.head_hidden) < 0:
            raise SpaceError(f"space {self.name!r}: head_hidden must be >= 0 (0: no hidden layer)")
        object.__setattr__(self, "head_hidden", int(self.head_hidden))
        sizes = sorted({self.stage_input_size(self.num_stages - 1, r) for r in self.resolutions})
        if self.head == "flatten" and len(sizes) > 1:
            raise SpaceError(f"space {self.name!r}: a flattened head needs one final map size, but resolutions "
                             f"{self.resolutions} give {sizes}; keep resolutions with one size or use head='global'")

    # ----------------------------------------------------------------------------- shape facts
    @property
    def num_stages(self) -> int:
        return len(self.stage_widths)

    @property
    def stage_max_layers(self) -> tuple[int, ...]:
        return tuple(b + max(self.depths) for b in self.base_depths)

    @property
    def num_layers(self) -> int:
        """Conv layers the supernet holds (one kernel size each)."""
        return sum(self.stage_max_layers)

    @property
    def max_kernel(self) -> int:
        return max(self.kernel_sizes)

    def stage_width(self, stage: int, mult_index: int) -> int:
        return make_divisible(self.stage_widths[stage] * self.width_mults[mult_index], self.channel_divisor)

    def stage_input_size(self, stage: int, resolution: int) -> int:
        """Spatial size of a stage's layers at ``resolution`` (2x2 max pooling, floor, before each stage but the first)."""
        return resolution >> stage

    def head_inputs(self, features: int, size: int) -> int:
        """Inputs of the head's first linear layer for ``features`` channels on a ``size`` x ``size`` map."""
        return features * size * size if self.head == "flatten" else features

    # ----------------------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        data = _without_later_defaults(asdict(self), _LATER_PLAIN_DEFAULTS)
        for attr in ("stage_widths", "base_depths", "resolutions", "depths", "kernel_sizes", "width_mults"):
            data[attr] = list(data[attr])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PlainSpace":
        try:
            return cls(**data)
        except TypeError as exc:
            raise SpaceError(f"malformed search-space description: {exc}") from None

    fingerprint = SearchSpace.fingerprint
    check_fingerprint = SearchSpace.check_fingerprint


AnySpace = SearchSpace | ResNetSpace | PlainSpace


def require_family(space: AnySpace, family: str, what: str) -> None:
    """Refuse, naming the space and family, a step that is not built for ``space``'s family yet."""
    if space.family != family:
        raise SpaceError(f"{what} is not available for space {space.name!r} ({space.family} family) yet; "
                         f"it works for {family}-family spaces: "
                         f"{', '.join(n for n in list_spaces() if _REGISTRY[n].family == family)}")


def space_from_dict(data: dict[str, Any]) -> AnySpace:
    """A stored space description of either family (``family`` is absent from mbconv dicts)."""
    kind = {"resnet": ResNetSpace, "plain": PlainSpace}.get(data.get("family"), SearchSpace)
    return kind.from_dict(data)


# --------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, AnySpace] = {}


def register_space(space: AnySpace, *, overwrite: bool = False) -> AnySpace:
    if space.name in _REGISTRY and not overwrite:
        raise SpaceError(f"a search space named {space.name!r} is already registered")
    _REGISTRY[space.name] = space
    return space


def list_spaces() -> list[str]:
    return sorted(_REGISTRY)


def get_space(name: "str | AnySpace") -> SearchSpace:
    """Look up a preset by name (a space is passed through). Typed as the mbconv ``SearchSpace`` that
    most steps need; they call :func:`require_family` where a ``ResNetSpace`` could arrive."""
    if isinstance(name, (SearchSpace, ResNetSpace, PlainSpace)):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SpaceError(
            f"unknown search space {name!r}; known spaces: {', '.join(list_spaces())}") from None


OFA_MBV3_W10 = register_space(SearchSpace(
    name="ofa-mbv3-w1.0",
    description="The published once-for-all MobileNetV3 ImageNet supernet (ofa_mbv3_d234_e346_k357_w1.0).",
    in_channels=3,
    num_classes=1000,
    stem_width=16,
    stem_stride=2,
    stem_act="hswish",
    first_block_width=16,
    first_block_act="relu",
    stages=(
        StageSpec(24, 2, False, "relu"),
        StageSpec(40, 2, True, "relu"),
        StageSpec(80, 2, False, "hswish"),
        StageSpec(112, 1, True, "hswish"),
        StageSpec(160, 2, True, "hswish"),
    ),
    final_expand_width=960,
    feature_width=1280,
    resolutions=tuple(range(128, 225, 4)),
    dropout=0.1,
))

OFA_MBV3_W12 = register_space(SearchSpace(
    name="ofa-mbv3-w1.2",
    description="The published once-for-all MobileNetV3 ImageNet supernet at width 1.2 "
                "(ofa_mbv3_d234_e346_k357_w1.2); once-for-all's acc_predictor.pth and Note10 latency tables "
                "were made for this one.",
    in_channels=3,
    num_classes=1000,
    stem_width=24,
    stem_stride=2,
    stem_act="hswish",
    first_block_width=24,
    first_block_act="relu",
    stages=(
        StageSpec(32, 2, False, "relu"),
        StageSpec(48, 2, True, "relu"),
        StageSpec(96, 2, False, "hswish"),
        StageSpec(136, 1, True, "hswish"),
        StageSpec(192, 2, True, "hswish"),
    ),
    final_expand_width=1152,
    feature_width=1536,
    resolutions=tuple(range(128, 225, 4)),
    dropout=0.1,
))

FMNIST_MBV3 = register_space(SearchSpace(
    name="fmnist-mbv3",
    description="Compact OFA-style MobileNetV3 space for 28 px grey images (Fashion-MNIST); sized to train on a CPU.",
    in_channels=1,
    num_classes=10,
    stem_width=16,
    stem_stride=2,
    stem_act="hswish",
    first_block_width=16,
    first_block_act="relu",
    stages=(
        StageSpec(24, 2, False, "relu"),
        StageSpec(32, 2, True, "relu"),
        StageSpec(48, 2, False, "hswish"),
        StageSpec(64, 1, True, "hswish"),
        StageSpec(96, 1, True, "hswish"),
    ),
    final_expand_width=256,
    feature_width=512,
    resolutions=(20, 24, 28, 32),
    dropout=0.1,
))

OFA_PROXYLESS_W13 = register_space(SearchSpace(
    name="ofa-proxyless-w1.3",
    description="The published once-for-all ProxylessNAS ImageNet supernet (ofa_proxyless_d234_e346_k357_w1.3): "
                "MBConv without SE, ReLU6 everywhere, one-block last stage, feature-mix conv before pooling.",
    in_channels=3,
    num_classes=1000,
    stem_width=40,
    stem_stride=2,
    stem_act="relu6",
    first_block_width=24,
    first_block_act="relu6",
    stages=(
        StageSpec(32, 2, False, "relu6"),
        StageSpec(56, 2, False, "relu6"),
        StageSpec(104, 2, False, "relu6"),
        StageSpec(128, 1, False, "relu6"),
        StageSpec(248, 2, False, "relu6"),
        StageSpec(416, 1, False, "relu6", depths=(1,)),
    ),
    final_expand_width=1664,
    feature_width=0,
    head_act="relu6",
    resolutions=tuple(range(128, 225, 4)),
    dropout=0.1,
    bn_eps=1e-3,
))

OFA_RESNET50 = register_space(ResNetSpace(
    name="ofa-resnet50",
    description="The published once-for-all ResNet50 ImageNet supernet (ofa_resnet50): elastic depth 0/1/2 per "
                "stage, expand ratio 0.2/0.25/0.35 per block, width multiplier 0.65/0.8/1.0.",
    in_channels=3,
    num_classes=1000,
    stem_width=64,
    stage_widths=(256, 512, 1024, 2048),
    stage_strides=(1, 2, 2, 2),
    base_depths=(2, 2, 4, 2),
    resolutions=tuple(range(128, 225, 4)),
))

FMNIST_CNN = register_space(PlainSpace(
    name="fmnist-cnn",
    description="Fashion-MNIST plain CNN: 3 stages of 1-3 3x3 conv layers (8-128 channels, 5 widths per stage), "
                "2x2 max pooling between stages, global pooling; input 20-28 px. Built for CPUs (issue 14).",
    in_channels=1,
    num_classes=10,
    stage_widths=(32, 64, 128),
    base_depths=(1, 1, 1),
    resolutions=(20, 24, 28),
    width_mults=(0.25, 0.375, 0.5, 0.75, 1.0),
    channel_divisor=4,
    dropout=0.1,
))

FMNIST_VGG = register_space(PlainSpace(
    name="fmnist-vgg",
    description="Fashion-MNIST VGG-style CNN: 3 stages of 1-3 3x3 conv layers (8-96 channels, 5 widths per stage), "
                "2x2 max pooling between stages, the 7x7 map flattened into a 128-unit hidden layer (as the "
                "small-cnn reference); input 28 px. Built for CPUs (issue 14).",
    in_channels=1,
    num_classes=10,
    stage_widths=(32, 64, 96),
    base_depths=(1, 1, 1),
    resolutions=(28,),
    width_mults=(0.25, 0.375, 0.5, 0.75, 1.0),
    channel_divisor=4,
    dropout=0.2,
    head="flatten",
    head_hidden=128,
))

FMNIST_RESVGG = register_space(replace(
    FMNIST_VGG,
    name="fmnist-resvgg",
    description="Fashion-MNIST VGG-style CNN with identity skips: fmnist-vgg (3 stages of 1-3 3x3 conv layers, "
                "8-96 channels, the 7x7 map flattened into a 128-unit hidden layer; input 28 px) where every layer "
                "but a stage's first adds its input, so a stage cut short keeps its representation (issue 14).",
    residual=True,
))
