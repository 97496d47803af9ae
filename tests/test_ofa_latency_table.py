"""once-for-all's latency-table files, read by hwnas, predict what once-for-all's own readers predict.

The test lets once-for-all's ``MBv3LatencyTable`` (and the tutorial's ``LatencyEstimator``, which
reads the Note10 tables) query a recording table: every key they ask for gets a random ``mean``.
Those tables are written as ``<r>_lookup_table.yaml`` files, loaded by hwnas, and both sides
predict the same random architectures (equal to 1e-9 relative). A missing ``ofa`` package fails
these tests (see ``tests/ofa_stub.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hwnas.arch import Architecture, sample_architecture
from hwnas.encoding import GeneLayout
from hwnas.errors import ArchitectureError, ConfigError
from hwnas.latency.ofa_table import is_ofa_latency_source, load_ofa_latency_table
from hwnas.latency.table import LatencyTable
from hwnas.space import SearchSpace, StageSpec, get_space
from ofa_stub import require_ofa  # tests/ is on sys.path

SPACE = get_space("ofa-mbv3-w1.0")
RESOLUTIONS = (128, 160, 176, 224)
N_ARCHS = 240
RTOL = 1e-9
OFA_KWARGS = dict(n_classes=1000, dropout_rate=0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                  depth_list=[2, 3, 4])
# The network OFA's tutorial Note10 tables were measured for (ofa_mbv3_d234_e346_k357_w1.2).
W12 = SearchSpace(name="ofa-mbv3-w1.2-test", in_channels=3, num_classes=1000, stem_width=24, stem_stride=2,
                  stem_act="hswish", first_block_width=24, first_block_act="relu",
                  stages=(StageSpec(32, 2, False, "relu"), StageSpec(48, 2, True, "relu"),
                          StageSpec(96, 2, False, "hswish"), StageSpec(136, 1, True, "hswish"),
                          StageSpec(192, 2, True, "hswish")),
                  final_expand_width=1152, feature_width=1536, resolutions=tuple(range(128, 225, 4)))


class RecordingLUT(dict):
    """A LUT that invents a random ``{"mean": ms}`` for every key it is asked for."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, key: str) -> dict[str, float]:
        value = self[key] = {"mean": float(self.rng.uniform(0.01, 5.0)), "std": 0.0}
        return value


def covering_archs(space: SearchSpace, resolution: int) -> list[Architecture]:
    """Full-depth subnets with one (kernel, expand) everywhere: together they run every block key."""
    n = space.num_block_slots
    return [Architecture((k,) * n, (e,) * n, (space.max_depth,) * space.num_stages, resolution)
            for k in space.kernel_sizes for e in space.expand_ratios]


def write_tables(folder, predict_one, space: SearchSpace, seed: int) -> None:
    """Record the keys ``predict_one(lut, arch)`` queries; write one OFA YAML file per resolution."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    for r in RESOLUTIONS:
        lut = RecordingLUT(rng)
        for arch in covering_archs(space, r):
            predict_one(lut, arch)
        (folder / f"{r}_lookup_table.yaml").write_text(yaml.safe_dump(dict(lut)))


def random_genes(space: SearchSpace, seed: int) -> np.ndarray:
    layout = GeneLayout(space)
    genes = layout.random(N_ARCHS, rng=seed)
    allowed = np.array([space.resolutions.index(r) for r in RESOLUTIONS], dtype=np.int8)
    genes[:, -1] = allowed[np.arange(N_ARCHS) % len(allowed)]
    return genes


# ----------------------------------------------------------------------------------- MBv3LatencyTable, width 1.0
@pytest.fixture(scope="module")
def ofa_w10():
    ofa_cls = require_ofa("ofa.imagenet_classification.elastic_nn.networks.ofa_mbv3", "OFAMobileNetV3")
    table_cls = require_ofa("ofa.nas.efficiency_predictor.latency_lookup_table", "MBv3LatencyTable")
    net = ofa_cls(width_mult=1.0, **OFA_KWARGS)

    def predict(lut: dict, arch: Architecture) -> float:
        table = table_cls.__new__(table_cls)  # its __init__ calls yaml.load without a Loader (PyYAML >= 6 refuses)
        table.lut = lut
        net.set_active_subnet(ks=list(arch.kernel), e=list(arch.expand), d=list(arch.depth))
        return table.predict_network_latency_given_config(net.get_active_net_config(), arch.resolution)

    return predict


@pytest.fixture(scope="module")
def w10_tables(ofa_w10, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ofa-lut") / "mydevice"
    write_tables(folder, ofa_w10, SPACE, seed=0)
    return folder


def test_predictions_equal_mbv3_latency_table(ofa_w10, w10_tables):
    table = load_ofa_latency_table(w10_tables, SPACE)
    assert table.resolutions == RESOLUTIONS and table.meta["device"] == "mydevice"
    genes = random_genes(SPACE, seed=1)
    luts = {r: yaml.safe_load((w10_tables / f"{r}_lookup_table.yaml").read_text()) for r in RESOLUTIONS}
    archs = GeneLayout(SPACE).decode(genes)
    expected = np.array([ofa_w10(luts[a.resolution], a) for a in archs])
    predicted = table.predict_genes(genes)
    assert np.std(expected) > 1.0  # random entries: a wrong key or a missed block changes the sum
    np.testing.assert_allclose(predicted, expected, rtol=RTOL, atol=0)
    np.testing.assert_allclose([table.predict(a) for a in archs[:20]], expected[:20], rtol=RTOL, atol=0)


def test_converted_table_saves_as_an_hwnas_table(w10_tables, tmp_path):
    table = load_ofa_latency_table(w10_tables / "160_lookup_table.yaml", SPACE, device="phone")
    saved = LatencyTable.load(table.save(tmp_path / "phone" / f"{SPACE.name}.json"), SPACE)
    genes = random_genes(SPACE, seed=2)
    genes[:, -1] = SPACE.resolutions.index(160)
    assert saved.meta["device"] == "phone" and saved.resolutions == (160,)
    np.testing.assert_array_equal(saved.predict_genes(genes), table.predict_genes(genes))
    assert 0 < saved.min_latency_ms() < saved.predict_genes(genes).min()
    with pytest.raises(ArchitectureError, match=r"profiled at resolutions \[160\], not \[224\]"):
        saved.predict(sample_architecture(SPACE, 0, resolution=224))


# ----------------------------------------------------------------------------------- the tutorial's Note10 reader, width 1.2
def test_predictions_equal_tutorial_latency_estimator(tmp_path):
    estimator_cls = require_ofa("ofa.tutorial.latency_table", "LatencyEstimator", standalone=True)

    def predict(lut: dict, arch: Architecture) -> float:
        estimator = estimator_cls.__new__(estimator_cls)
        estimator.lut = lut
        return estimator.predict_network_latency_given_spec(arch.to_ofa_dict())

    write_tables(tmp_path / "note10", predict, W12, seed=3)
    table = load_ofa_latency_table(tmp_path / "note10", W12)
    genes = random_genes(W12, seed=4)
    luts = {r: yaml.safe_load((tmp_path / "note10" / f"{r}_lookup_table.yaml").read_text()) for r in RESOLUTIONS}
    expected = np.array([predict(luts[a.resolution], a) for a in GeneLayout(W12).decode(genes)])
    np.testing.assert_allclose(table.predict_genes(genes), expected, rtol=RTOL, atol=0)
    with pytest.raises(ConfigError, match=r"stem has 24 output channels where this space has 16.*width-1\.2"):
        load_ofa_latency_table(tmp_path / "note10", SPACE)


# ----------------------------------------------------------------------------------- files (no ofa needed)
def test_sources_are_recognised_by_name(tmp_path):
    (tmp_path / "224_lookup_table.yaml").write_text("{}")
    (tmp_path / "cpu.yaml").write_text("{}")
    assert is_ofa_latency_source(tmp_path) and is_ofa_latency_source(tmp_path / "224_lookup_table.yaml")
    assert not is_ofa_latency_source(tmp_path / "cpu.yaml") and not is_ofa_latency_source(tmp_path / "missing")


@pytest.mark.parametrize("name, text, pattern", [
    ("devices.yaml", "{}", "holds no once-for-all latency table"),
    ("160_lookup_table.yaml", "- 1\n- 2\n", "is not a once-for-all latency table"),
    ("160_lookup_table.yaml", "a: [unclosed\n", "cannot read once-for-all latency table"),
    ("160_lookup_table.yaml", "Conv-input:160x160x3-output:80x80x16: {std: 1.0}\n", "has no finite, non-negative 'mean'"),
    ("160_lookup_table.yaml", "Conv-input:160x160x3-output:80x80x16: {mean: 1.0}\n", "has no entry 'expanded_conv-input"),
    ("240_lookup_table.yaml", "x: {mean: 1}\n", r"resolution\(s\) \[240\]"),
])
def test_bad_tables_raise_clear_errors(tmp_path, name, text, pattern):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        load_ofa_latency_table(tmp_path / name, SPACE)


# ----------------------------------------------------------------------------------- both in a search
def test_ofa_predictor_and_table_drive_a_search(w10_tables):
    """OFA's accuracy predictor and latency tables plug into the NSGA-II engine as hwnas's own do."""
    import dataclasses

    from hwnas.accuracy.ofa_predictor import ofa_predictor_from_state_dict
    from hwnas.search import NSGA2, NSGA2Config
    from hwnas.search.problem import Constraint, Objective, SearchProblem

    space = dataclasses.replace(SPACE, resolutions=RESOLUTIONS)  # the resolutions the tables cover
    rng = np.random.default_rng(5)
    state = {"0.weight": rng.standard_normal((16, 128)) / 8, "0.bias": np.zeros(16),
             "2.weight": rng.standard_normal((1, 16)) / 4, "2.bias": np.array([0.7])}
    predictor = ofa_predictor_from_state_dict(state, space)
    table = load_ofa_latency_table(w10_tables, space)
    budget = float(np.median(table.predict_genes(GeneLayout(space).random(500, rng=0))))
    problem = SearchProblem(GeneLayout(space), [Objective("accuracy", predictor.predict, "max"),
                                               Objective("latency", table.predict_genes, "min", unit="ms")],
                            [Constraint("latency", table.predict_genes, budget, unit="ms")])
    result = NSGA2(problem, NSGA2Config(pop_size=16, n_evaluations=320, seed=0)).run()
    front = result.genes[result.front]
    assert len(front) >= 2
    assert (table.predict_genes(front) <= budget).all()
    np.testing.assert_allclose(-result.F[result.front, 0], predictor.predict(front), rtol=1e-12)
