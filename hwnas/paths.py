"""Where hwnas's artifacts live by default, relative to the working directory (a checkout).

One module so that ``hwnas profile`` writes a table exactly where ``hwnas search``, ``predict``,
``export`` and the quickstart look for it, and a changed layout is a one-line change.
Imports nothing heavy: the CLI's ``--help`` and ``hwnas search`` use it.
"""

from __future__ import annotations

from pathlib import Path

from hwnas.errors import ConfigError

CHECKPOINTS_DIR = Path("checkpoints")
# the embedded default: the supernet `hwnas search`, `hwnas quickstart` and `hwnas train` default to
DEFAULT_SPACE = "fmnist-resvgg"
PREDICTORS_DIR = Path("predictors")
TABLES_DIR = Path("latency_tables")
RUNS_DIR = Path("runs")
QUICKSTART_DIR = RUNS_DIR / "quickstart"
# hand-designed networks the quickstart's exported models are compared with (experiments/reference_models.py)
REFERENCE_MODELS = Path("experiments") / "results" / "reference_models.json"
PREDICTOR_FILE = "accuracy_xgb.json"
# the precisions a latency table's graphs can run at: FP32 as exported, or ONNX Runtime static INT8 (QDQ)
TABLE_PRECISIONS = ("fp32", "int8")


def shipped_supernet_path(space_name: str) -> Path:
    """``checkpoints/<space>.safetensors``: where a space's trained supernet ships."""
    return CHECKPOINTS_DIR / f"{space_name}.safetensors"


DEFAULT_SUPERNET = shipped_supernet_path(DEFAULT_SPACE)


def predictor_dir(space_name: str, precision: str = "fp32") -> Path:
    """``predictors/<space>/``: the accuracy data set and fitted predictors of a space; its INT8
    (quantised-model) data set and predictor live in ``predictors/<space>/int8/``."""
    check_precision(precision)
    return PREDICTORS_DIR / space_name if precision == "fp32" else PREDICTORS_DIR / space_name / precision


def default_predictor_path(space_name: str, precision: str = "fp32") -> Path:
    """``predictors/<space>[/int8]/accuracy_xgb.json``: what ``hwnas fit-predictor`` writes and search reads."""
    return predictor_dir(space_name, precision) / PREDICTOR_FILE


def check_precision(precision: str) -> str:
    """``precision`` if it is one hwnas deploys at (FP32 or ONNX Runtime static INT8), else a ConfigError."""
    if precision not in TABLE_PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(TABLE_PRECISIONS)}; "
                          "pass --precision fp32 or --precision int8")
    return precision


def table_stem(space_name: str, precision: str = "fp32") -> str:
    """``<space>`` for FP32 tables (the layout every existing table has), ``<space>.int8`` for INT8 ones,
    so both precisions of a device live side by side; the table, its report and checkpoint share it."""
    check_precision(precision)
    return space_name if precision == "fp32" else f"{space_name}.{precision}"


def table_path(out_dir: str | Path, device_slug: str, space_name: str, precision: str = "fp32") -> Path:
    """``<out>/<device-slug>/<space>[.int8].json``: where ``hwnas profile`` writes a device's latency table."""
    return Path(out_dir) / device_slug / f"{table_stem(space_name, precision)}.json"


def default_table_path(device_slug: str, space_name: str, precision: str = "fp32") -> Path:
    """A device's table under the default ``latency_tables/`` folder."""
    return table_path(TABLES_DIR, device_slug, space_name, precision)
