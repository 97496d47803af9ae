"""What a request to the edge agent may ask for: strict parsing of query options and batch headers.

Why strict: the agent runs on a board reachable by whoever holds the token, and every value it
accepts ends up as a thread count, a tensor shape or a loop bound on that board. So every query
option is parsed by a fixed grammar with stated bounds (the same :data:`MEASURE_OPTIONS` table
feeds the 400 messages and ``/openapi.json``), the batch header is JSON with a depth limit and no
``NaN``/``Infinity``, integer fields must be JSON integers (not ``"987"``, ``987.9`` or ``true``),
and requested input shapes are capped in elements before anything is allocated. Every violation is
a :class:`RequestError` with a 4xx status and a reason, never a 500.
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from hwnas.errors import ConfigError
from hwnas.latency.device import MAX_REPEATS, MAX_WARMUP, DeviceProfile

CPU_COUNT = os.cpu_count() or 1  # the thread cap: a session may not ask for more threads than cores
MAX_BATCH_MODELS = 4096
MAX_HEADER_BYTES = 1 << 20  # the batch body's JSON header; 4,096 models need ~200 kB
MAX_JSON_DEPTH = 8  # the header's schema is 4 deep ({"models": [{"shape": [...]}]})
MAX_RESULT_CELLS = 1_000_000  # passes x models of one interleaved answer (~20 MB of JSON)
MAX_DIM = 2**31 - 1
MAX_RANK = 8


class RequestError(Exception):
    """A client mistake answered with ``status`` and a JSON ``{"error": reason}``."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class OptionSpec:
    """One query option: its grammar (``kind``), inclusive bounds and the text users see."""

    name: str
    kind: str  # "int", "number", "int_list" (comma list of ints), "name" (identifier)
    low: float
    high: float
    help: str
    max_items: int = 1  # for "int_list": the most comma-separated items

    def parse(self, text: str) -> Any:
        """Text from the query string -> a value within bounds; anything else -> 400 naming the bounds."""
        value = _PARSERS[self.kind](text)
        items = value if isinstance(value, tuple) else (value,)
        if value is None or (self.kind != "name" and not all(self.low <= v <= self.high for v in items)) \
                or len(items) > self.max_items:
            raise RequestError(400, f"option {self.name}={text[:40]!r} is invalid; expected {self.help}")
        return value

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of this option, bounds included."""
        if self.kind == "int":
            return {"type": "integer", "minimum": int(self.low), "maximum": int(self.high)}
        if self.kind == "number":
            return {"type": "number", "minimum": self.low, "maximum": self.high}
        if self.kind == "int_list":
            return {"type": "string", "pattern": r"^\d{1,10}(,\d{1,10})*$",
                    "description": f"{self.max_items} or fewer integers, each {int(self.low)}..{int(self.high)}"}
        return {"type": "string", "pattern": _NAME.pattern, "maxLength": int(self.high)}


_INT = re.compile(r"[+-]?\d{1,12}")
_NUMBER = re.compile(r"[+-]?(\d{1,12}(\.\d{0,12})?|\.\d{1,12})")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _parse_int(text: str) -> int | None:
    return int(text) if _INT.fullmatch(text.strip()) else None


def _parse_number(text: str) -> float | None:
    return float(text) if _NUMBER.fullmatch(text.strip()) else None  # no nan, inf or 1e400: finite by grammar


def _parse_int_list(text: str) -> tuple[int, ...] | None:
    parts = [p.strip() for p in text.split(",")]
    return tuple(int(p) for p in parts) if all(_INT.fullmatch(p) for p in parts) else None


def _parse_name(text: str) -> str | None:
    return text if _NAME.fullmatch(text) else None


_PARSERS = {"int": _parse_int, "number": _parse_number, "int_list": _parse_int_list, "name": _parse_name}

MEASURE_OPTIONS: dict[str, OptionSpec] = {spec.name: spec for spec in (
    OptionSpec("warmup", "int", 0, MAX_WARMUP, f"untimed runs first, 0..{MAX_WARMUP} (default 10)"),
    OptionSpec("repeats", "int", 1, MAX_REPEATS, f"timed runs, 1..{MAX_REPEATS} (default 30)"),
    OptionSpec("threads", "int", 0, CPU_COUNT,
               f"ONNX Runtime intra-op threads, 0..{CPU_COUNT} (this board's cores; 0 = all, the default)"),
    OptionSpec("pin", "int_list", 0, CPU_COUNT - 1,
               f"comma list of 1..{CPU_COUNT} distinct CPU ids 0..{CPU_COUNT - 1} to pin to, e.g. 0 or 0,1",
               max_items=CPU_COUNT),
    OptionSpec("batch", "int", 1, 4096, "batch size used for a symbolic batch dimension, 1..4096 (default 1)"),
    OptionSpec("provider", "name", 0, 64, "ONNX Runtime execution provider (default CPUExecutionProvider)"),
    OptionSpec("shape", "int_list", 1, MAX_DIM,
               f"full input shape, 1..{MAX_RANK} dims >= 1, e.g. 1,3,224,224 (default: the model's); "
               "its elements count against the agent's input limit (GET /v1/info: max_input_elements)",
               max_items=MAX_RANK),
)}
# extra options of POST /v1/measure-interleaved (the "shape" option there is per model, in the header)
INTERLEAVED_OPTIONS: dict[str, OptionSpec] = {spec.name: spec for spec in (
    OptionSpec("passes", "int", 1, MAX_REPEATS, f"round-robin passes through all models, 1..{MAX_REPEATS} "
               f"(default 30); passes x models <= {MAX_RESULT_CELLS:,}"),
    OptionSpec("burst", "int", 1, 10, "back-to-back runs per model per pass, the fastest kept, 1..10 (default 2)"),
    OptionSpec("min_seconds", "number", 0, 60, "keep passing until this many seconds went by, 0..60 (default 0)"),
)}
_PROFILE_FIELDS = {"warmup": "warmup", "repeats": "repeats", "threads": "threads", "pin": "pin_cores",
                   "batch": "batch_size", "provider": "provider"}


@dataclass(frozen=True)
class InterleavedOptions:
    """The loop bounds of one interleaved request."""

    passes: int = 30
    burst: int = 2
    min_seconds: float = 0.0


@dataclass(frozen=True)
class BatchPart:
    """One model of an interleaved batch body: its byte count and optional input shape."""

    size: int
    shape: tuple[int, ...] | None


def parse_measure_options(query: str, max_input_elements: int) -> tuple[DeviceProfile, tuple[int, ...] | None]:
    """Query string -> a validated one-off device profile (+ optional input shape); bad values -> 400."""
    params = _query_params(query, MEASURE_OPTIONS)
    shape = None
    fields: dict[str, Any] = {"name": "agent-request", "backend": "onnxruntime"}
    for key, text in params.items():
        value = MEASURE_OPTIONS[key].parse(text)
        if key == "shape":
            shape = check_shape(value, max_input_elements, "option shape")
        else:
            fields[_PROFILE_FIELDS[key]] = value
    if "pin_cores" in fields and len(set(fields["pin_cores"])) != len(fields["pin_cores"]):
        raise RequestError(400, f"option pin lists a CPU twice; expected {MEASURE_OPTIONS['pin'].help}")
    try:
        return DeviceProfile.from_dict(fields, source="measure request"), shape
    except ConfigError as exc:
        raise RequestError(400, str(exc).replace("field 'pin_cores'", "option 'pin'")) from None


def parse_interleaved_options(query: str, max_input_elements: int) -> tuple[DeviceProfile, InterleavedOptions]:
    """Query string of /v1/measure-interleaved -> (profile, loop bounds); bad values -> 400."""
    params = _query_params(query, {**MEASURE_OPTIONS, **INTERLEAVED_OPTIONS})
    if "shape" in params:
        raise RequestError(400, "option 'shape' is per model here: give it in the body's JSON header")
    loop = {key: INTERLEAVED_OPTIONS[key].parse(params.pop(key)) for key in list(params)
            if key in INTERLEAVED_OPTIONS}
    profile, _ = parse_measure_options(urllib.parse.urlencode(params), max_input_elements)
    return profile, InterleavedOptions(**loop)


def _query_params(query: str, allowed: dict[str, OptionSpec]) -> dict[str, str]:
    """Last value of each option; unknown options and oversized query strings -> 400."""
    if len(query) > 4096:
        raise RequestError(400, f"query string of {len(query)} characters is too long; options fit in 4096")
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise RequestError(400, f"unknown option {unknown[0][:40]!r}; allowed: {', '.join(allowed)}")
    return {key: values[-1] for key, values in params.items()}


def check_shape(shape: tuple[int, ...], max_input_elements: int, what: str) -> tuple[int, ...]:
    """A requested input shape within rank, dimension and element limits, else 400 (malformed) / 422 (too big)."""
    if not 1 <= len(shape) <= MAX_RANK or not all(1 <= d <= MAX_DIM for d in shape):
        raise RequestError(400, f"{what} {list(shape)[:MAX_RANK + 1]} is invalid; expected 1..{MAX_RANK} "
                                f"dimensions, each 1..{MAX_DIM}")
    elements = math.prod(shape)
    if elements > max_input_elements:
        raise RequestError(422, f"{what} {'x'.join(map(str, shape))} has {elements:.3g} elements, over this agent's "
                                f"limit of {max_input_elements:,} input elements (a quarter of --max-memory-mb "
                                "in float32); send a smaller shape or restart the agent with more memory")
    return shape


def parse_batch_header(raw: bytes, max_input_elements: int) -> list[BatchPart]:
    """The JSON header of an interleaved batch -> its parts; anything but the documented schema -> 400.

    Schema: ``{"models": [{"bytes": int > 0, "shape": [int, ...] or null}, ...]}`` with 1..4096
    models; JSON integers only, no NaN/Infinity, nested at most :data:`MAX_JSON_DEPTH` deep.
    """
    header = strict_json(raw, "the JSON header")
    expected = 'the JSON header must be {"models": [{"bytes": int, "shape": [int, ...] or null}]}'
    models = header.get("models") if isinstance(header, dict) else None
    if not isinstance(models, list) or not all(isinstance(m, dict) and "bytes" in m for m in models):
        raise RequestError(400, expected)
    if not 1 <= len(models) <= MAX_BATCH_MODELS:
        raise RequestError(400, f"send 1..{MAX_BATCH_MODELS} models per request, got {len(models)}")
    parts = []
    for j, model in enumerate(models):
        size, shape = model["bytes"], model.get("shape")
        if not _is_int(size) or size <= 0:
            raise RequestError(400, f"model {j}: 'bytes' must be a positive JSON integer, got {json.dumps(size)[:40]}")
        if shape is not None:
            if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
                raise RequestError(400, f"model {j}: 'shape' must be a list of JSON integers or null")
            shape = check_shape(tuple(shape), max_input_elements, f"model {j}: shape")
        parts.append(BatchPart(size, shape))
    return parts


def strict_json(raw: bytes, what: str) -> Any:
    """Parse JSON refusing NaN/Infinity, non-finite floats and nesting deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, f"{what} is not UTF-8") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise RequestError(400, f"{what} is nested {depth} deep; at most {MAX_JSON_DEPTH} levels are accepted")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"{what} is not valid JSON ({exc.msg} at character {exc.pos})") from None


def json_depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text, strings ignored (cheap: checked before parsing)."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    depth = deepest = 0
    for bracket in re.findall(r"[\[\]{}]", stripped):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _refuse_constant(name: str) -> None:
    raise RequestError(400, f"the JSON holds {name}; only finite numbers are accepted")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(400, f"the JSON holds the number {text[:40]}, which is not finite")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
