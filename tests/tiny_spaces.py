"""A tiny registered search space shared by the latency tests: every table entry is a tiny graph."""

from __future__ import annotations

from hwnas.space import PlainSpace, ResNetSpace, SearchSpace, StageSpec, get_space, list_spaces, register_space


def tiny_space(name: str = "tiny-lut-test", kernels: tuple[int, ...] = (3, 5)) -> SearchSpace:
    space = SearchSpace(
        name=name, in_channels=1, num_classes=4, stem_width=8, stem_stride=2, stem_act="hswish",
        first_block_width=8, first_block_act="relu",
        stages=(StageSpec(8, 2, False, "relu"), StageSpec(16, 1, True, "hswish")),
        final_expand_width=32, feature_width=32, resolutions=(16,), kernel_sizes=kernels,
        expand_ratios=(3, 4), depths=(1, 2), dropout=0.0)
    return get_space(name) if name in list_spaces() else register_space(space)


# overhead + stem + first block + 2 stages x 2 positions x 2 kernels x 2 expands + head
TINY_ENTRIES = 1 + 1 + 1 + 16 + 1


def tiny_proxyless_space(name: str = "tiny-proxyless-test") -> SearchSpace:
    """ProxylessNAS's shape in miniature: ReLU6, no SE, a one-block last stage, no feature-mix conv."""
    space = SearchSpace(
        name=name, in_channels=1, num_classes=4, stem_width=8, stem_stride=2, stem_act="relu6",
        first_block_width=8, first_block_act="relu6",
        stages=(StageSpec(8, 2, False, "relu6"), StageSpec(16, 1, False, "relu6", depths=(1,))),
        final_expand_width=32, feature_width=0, head_act="relu6", resolutions=(16,), kernel_sizes=(3, 5),
        expand_ratios=(3, 4), depths=(1, 2), dropout=0.0, bn_eps=1e-3)
    return get_space(name) if name in list_spaces() else register_space(space)


# overhead + stem + first block + (2 positions + 1 position) x 2 kernels x 2 expands + head
TINY_PROXYLESS_ENTRIES = 1 + 1 + 1 + 12 + 1


def tiny_resnet_space(name: str = "tiny-resnet-test") -> ResNetSpace:
    """once-for-all's elastic ResNet in miniature: two stages, two of each choice, 32/40 px inputs."""
    space = ResNetSpace(
        name=name, in_channels=1, num_classes=4, stem_width=48, stage_widths=(32, 64), stage_strides=(1, 2),
        base_depths=(1, 1), resolutions=(32, 40), depths=(0, 1), expand_ratios=(0.25, 0.5), width_mults=(0.5, 1.0))
    return get_space(name) if name in list_spaces() else register_space(space)


def tiny_plain_space(name: str = "tiny-plain-test") -> PlainSpace:
    """The plain CNN in miniature: two stages (the first always runs two layers, so one of its layers
    never ends the stage), two of each choice, 12/16 px inputs, widths <= 32."""
    space = PlainSpace(
        name=name, in_channels=1, num_classes=4, stage_widths=(16, 32), base_depths=(2, 1), resolutions=(12, 16),
        depths=(0, 1), kernel_sizes=(3, 5), width_mults=(0.5, 1.0), dropout=0.1)
    return get_space(name) if name in list_spaces() else register_space(space)


def plain_genes_space(name: str = "plain-genes-test") -> PlainSpace:
    """fmnist-cnn's shape with two kernel choices (1, 3) and four width multipliers (divisor 8): every
    kind of gene has a choice, so gene, cost and feature tests can tell the choices apart."""
    import dataclasses

    space = dataclasses.replace(get_space("fmnist-cnn"), name=name, kernel_sizes=(1, 3),
                                width_mults=(0.25, 0.5, 0.75, 1.0), channel_divisor=8)
    return get_space(name) if name in list_spaces() else register_space(space)
