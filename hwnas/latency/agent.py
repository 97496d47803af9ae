"""The edge agent: a small HTTP server that times ONNX models on the board it runs on.

Runs with only numpy + onnxruntime + PyYAML (no torch, no web framework: stdlib
``http.server.ThreadingHTTPServer``). The host does the search; the board only answers
"how long does this model take here?".

Security model: it binds 127.0.0.1 unless told otherwise (reach it over an SSH tunnel, or pass
``--host`` on a trusted network); every endpoint but ``/v1/health`` and ``/openapi.json`` needs
``Authorization: Bearer <token>``, compared in constant time; uploads are size-capped before they
are read; models are only ever parsed by ONNX Runtime (no pickle) from a temporary directory that
is removed afterwards. Bad input gets a 4xx with a JSON reason, never a crash. Measurements run one
at a time (a lock) so concurrent requests cannot disturb each other's timings.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, HwnasError
from hwnas.latency.device import MAX_REPEATS, MAX_WARMUP, DeviceProfile
from hwnas.latency.measure import OnnxRuntimeMeasurer, host_facts

DEFAULT_PORT = 8765
TOKEN_ENV = "HWNAS_AGENT_TOKEN"
MAX_DRAIN_BYTES = 64 * 1024 * 1024  # read (and discard) at most this much of a refused oversized upload

# query option -> (converter, description). Bounds come from DeviceProfile's validation.
MEASURE_OPTIONS = {
    "warmup": (int, f"untimed runs first, 0..{MAX_WARMUP} (default 10)"),
    "repeats": (int, f"timed runs, 1..{MAX_REPEATS} (default 30)"),
    "threads": (int, "ONNX Runtime intra-op threads, 0 = all cores (default 0)"),
    "pin": (lambda s: [int(c) for c in s.split(",") if c.strip()], "comma list of CPU ids to pin to, e.g. 0 or 0,1"),
    "batch": (int, "batch size used for a symbolic batch dimension, 1..4096 (default 1)"),
    "provider": (str, "ONNX Runtime execution provider (default CPUExecutionProvider)"),
    "shape": (lambda s: tuple(int(c) for c in s.split(",")), "full input shape, e.g. 1,3,224,224 (default: the model's)"),
}
# extra options of POST /v1/measure-interleaved (the "shape" option there is per model, in the header)
INTERLEAVED_OPTIONS = {
    "passes": (int, f"round-robin passes through all models, 1..{MAX_REPEATS} (default 30)"),
    "burst": (int, "back-to-back runs per model per pass, the fastest kept, 1..10 (default 2)"),
    "min_seconds": (float, "keep passing until this many seconds went by, 0..60 (default 0)"),
}
_INTERLEAVED_BOUNDS = {"passes": (1, MAX_REPEATS), "burst": (1, 10), "min_seconds": (0, 60)}
MAX_BATCH_MODELS = 4096
_OPTION_FIELDS = {"warmup": "warmup", "repeats": "repeats", "threads": "threads", "pin": "pin_cores",
                  "batch": "batch_size", "provider": "provider"}


@dataclass(frozen=True)
class AgentConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str = ""
    max_upload_mb: float = 64.0

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class RequestError(Exception):
    """A client mistake answered with ``status`` and a JSON ``{"error": reason}``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_interleaved_options(query: str) -> tuple[DeviceProfile, int, int, float]:
    """Query string of /v1/measure-interleaved -> (profile, passes, burst, min_seconds); bad values -> 400."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    extra = {}
    for key, (convert, help_text) in INTERLEAVED_OPTIONS.items():
        if key in params:
            try:
                extra[key] = convert(params.pop(key)[-1])
            except ValueError:
                extra[key] = -1
            low, high = _INTERLEAVED_BOUNDS[key]
            if not low <= extra[key] <= high:
                raise RequestError(400, f"option {key} is invalid; expected {help_text}")
    if "shape" in params:
        raise RequestError(400, "option 'shape' is per model here: give it in the body's JSON header")
    profile, _ = parse_measure_options(urllib.parse.urlencode(params, doseq=True))
    return profile, int(extra.get("passes", 30)), int(extra.get("burst", 2)), float(extra.get("min_seconds", 0.0))


def split_batch(data: bytes, max_models: int = MAX_BATCH_MODELS) -> list[tuple[bytes, tuple[int, ...] | None]]:
    """Body of /v1/measure-interleaved -> [(model bytes, input shape or None)]; malformed -> 400.

    Layout (no pickle, nothing executable): a 4-byte big-endian length N, N bytes of UTF-8 JSON
    ``{"models": [{"bytes": size, "shape": [1, 3, 224, 224] or null}, ...]}``, then the models'
    bytes back to back in that order.
    """
    if len(data) < 4:
        raise RequestError(400, "body too short: expected a 4-byte header length, a JSON header and the models")
    n = int.from_bytes(data[:4], "big")
    if n <= 0 or 4 + n > len(data):
        raise RequestError(400, f"JSON header length {n} does not fit the {len(data)}-byte body")
    try:
        header = json.loads(data[4:4 + n].decode("utf-8"))
        models = header["models"]
        sizes = [int(m["bytes"]) for m in models]
        shapes = [None if m.get("shape") is None else tuple(int(d) for d in m["shape"]) for m in models]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise RequestError(400, 'the JSON header must be {"models": [{"bytes": int, "shape": [int, ...] or null}]}') \
            from None
    if not sizes or len(sizes) > max_models:
        raise RequestError(400, f"send 1..{max_models} models per request, got {len(sizes)}")
    if any(b <= 0 for b in sizes) or any(sh is not None and (not sh or min(sh) <= 0) for sh in shapes):
        raise RequestError(400, "every model needs a positive byte count and a positive shape (or null)")
    if sum(sizes) != len(data) - 4 - n:
        raise RequestError(400, f"the header announces {sum(sizes)} model bytes but the body holds {len(data) - 4 - n}")
    out, offset = [], 4 + n
    for size, shape in zip(sizes, shapes):
        out.append((data[offset:offset + size], shape))
        offset += size
    return out


def parse_measure_options(query: str) -> tuple[DeviceProfile, tuple[int, ...] | None]:
    """Query string -> a validated one-off device profile (+ optional input shape); bad values -> 400."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - set(MEASURE_OPTIONS))
    if unknown:
        raise RequestError(400, f"unknown option {unknown[0]!r}; allowed: {', '.join(MEASURE_OPTIONS)}")
    fields: dict[str, Any] = {"name": "agent-request", "backend": "onnxruntime"}
    shape = None
    for key, values in params.items():
        convert, help_text = MEASURE_OPTIONS[key]
        try:
            value = convert(values[-1])
        except ValueError:
            raise RequestError(400, f"option {key}={values[-1]!r} is invalid; expected {help_text}") from None
        if key == "shape":
            if not value or any(d <= 0 for d in value):
                raise RequestError(400, f"option shape={values[-1]!r} is invalid; expected {help_text}")
            shape = value
        else:
            fields[_OPTION_FIELDS[key]] = value if value != [] else None
    try:
        return DeviceProfile.from_dict(fields, source="measure request"), shape
    except ConfigError as exc:
        raise RequestError(400, str(exc).replace("field 'pin_cores'", "option 'pin'")) from None


def openapi_spec() -> dict[str, Any]:
    """Hand-written OpenAPI 3.0 description of the agent's endpoints."""
    err = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    params = [{"name": k, "in": "query", "required": False, "description": d,
               "schema": {"type": "integer" if conv is int else "string"}}
              for k, (conv, d) in MEASURE_OPTIONS.items()]
    number = {"type": "number"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "hwnas edge agent", "version": "1",
                 "description": "Times ONNX models on this device with ONNX Runtime."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
                "LatencyStats": {"type": "object", "properties": {
                    **{k: number for k in ("median_ms", "mean_ms", "std_ms", "min_ms", "p10_ms", "p90_ms")},
                    "repeats": {"type": "integer"}, "batch_size": {"type": "integer"}}},
            },
        },
        "paths": {
            "/v1/health": {"get": {"summary": "liveness check (no auth)", "security": [],
                                   "responses": {"200": {"description": "agent is up"}}}},
            "/v1/info": {"get": {"summary": "device and runtime facts", "security": [{"bearer": []}],
                                 "responses": {"200": {"description": "facts"}, "401": err}}},
            "/v1/measure": {"post": {
                "summary": "time an ONNX model (body: raw model bytes)", "security": [{"bearer": []}],
                "parameters": params,
                "requestBody": {"required": True, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "latency statistics", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/LatencyStats"}}}},
                    "400": err, "401": err, "411": err, "413": err}}},
            "/v1/measure-interleaved": {"post": {
                "summary": "time many ONNX models in round-robin passes, so device drift hits all alike "
                           "(body: 4-byte big-endian header length, JSON header "
                           "{models: [{bytes, shape}]}, then the models back to back)",
                "security": [{"bearer": []}],
                "parameters": [p for p in params if p["name"] != "shape"] + [
                    {"name": k, "in": "query", "required": False, "description": d,
                     "schema": {"type": "integer" if conv is int else "number"}}
                    for k, (conv, d) in INTERLEAVED_OPTIONS.items()],
                "requestBody": {"required": True, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "per pass, per model: milliseconds", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {"rows": {
                        "type": "array", "items": {"type": "array", "items": number}}}}}}},
                    "400": err, "401": err, "411": err, "413": err}}},
            "/openapi.json": {"get": {"summary": "this document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.0 document"}}}},
        },
    }


class AgentServer(ThreadingHTTPServer):
    """Holds the agent's config and the lock that serialises measurements."""

    daemon_threads = True

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.measure_lock = threading.Lock()
        super().__init__((config.host, config.port), AgentHandler)


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = "hwnas-agent/1"
    timeout = 120  # seconds a client may stall mid-upload before its socket is dropped

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch({"/v1/health": self._health, "/v1/info": self._info, "/openapi.json": self._openapi})

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch({"/v1/measure": self._measure, "/v1/measure-interleaved": self._measure_interleaved})

    def _dispatch(self, routes: dict[str, Any]) -> None:
        path = urllib.parse.urlsplit(self.path).path
        self._body_consumed = False
        try:
            handler = routes.get(path)
            if handler is None:
                raise RequestError(404, f"no endpoint {self.command} {path}; see GET /openapi.json")
            self._send(200, handler())
        except RequestError as exc:
            if not self._body_consumed:
                self._drain_unread_body()
            self._send(exc.status, {"error": exc.reason})
        except Exception as exc:  # a bug, not bad input: report it, keep serving
            self.log_error("internal error: %r", exc)
            self._send(500, {"error": f"internal agent error: {type(exc).__name__}: {exc}"})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="hwnas-agent"')
        self.end_headers()
        self.wfile.write(data)

    def _authorize(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise RequestError(401, "missing 'Authorization: Bearer <token>' header")
        if not hmac.compare_digest(given.strip().encode("utf-8"), self.server.config.token.encode("utf-8")):
            raise RequestError(401, "wrong token")

    def _health(self) -> dict[str, Any]:
        return {"status": "ok"}

    def _openapi(self) -> dict[str, Any]:
        return openapi_spec()

    def _info(self) -> dict[str, Any]:
        self._authorize()
        return {**host_facts(), "max_upload_mb": self.server.config.max_upload_mb}

    def _read_body(self) -> bytes:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise RequestError(411, "Content-Length is required; send the model as one octet-stream body")
        try:
            length = int(length_text)
        except ValueError:
            raise RequestError(400, f"Content-Length {length_text!r} is not a number") from None
        if length > self.server.config.max_upload_bytes:
            raise RequestError(413, f"model is {length / 2**20:.1f} MB, over this agent's limit of "
                                    f"{self.server.config.max_upload_mb:g} MB (--max-upload-mb)")
        if length <= 0:
            raise RequestError(400, "empty body; POST the ONNX model bytes")
        data = self.rfile.read(length)
        self._body_consumed = True
        if len(data) != length:
            raise RequestError(400, f"body ended after {len(data)} of {length} bytes; resend the model")
        return data

    def _drain_unread_body(self) -> None:
        """Discard a refused upload (bounded) so the client reads our 4xx instead of a reset socket."""
        try:
            length = max(0, int(self.headers.get("Content-Length", "0")))
        except ValueError:
            length = 0
        remaining = min(length, MAX_DRAIN_BYTES)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)
        if length > MAX_DRAIN_BYTES:
            self.close_connection = True

    def _measure(self) -> dict[str, Any]:
        self._authorize()
        if self.headers.get_content_type() != "application/octet-stream":
            raise RequestError(400, "Content-Type must be application/octet-stream (raw ONNX model bytes)")
        profile, shape = parse_measure_options(urllib.parse.urlsplit(self.path).query)
        data = self._read_body()
        with self.server.measure_lock, tempfile.TemporaryDirectory(prefix="hwnas-agent-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(data)
            try:
                stats = OnnxRuntimeMeasurer(profile).measure_onnx(path, shape)
            except HwnasError as exc:  # invalid model, unsupported op, unavailable provider, bad pinning
                raise RequestError(400, str(exc)) from None
        return stats.to_dict()

    def _measure_interleaved(self) -> dict[str, Any]:
        self._authorize()
        if self.headers.get_content_type() != "application/octet-stream":
            raise RequestError(400, "Content-Type must be application/octet-stream (header + ONNX models)")
        profile, passes, burst, min_seconds = parse_interleaved_options(urllib.parse.urlsplit(self.path).query)
        models = split_batch(self._read_body())
        with self.server.measure_lock, tempfile.TemporaryDirectory(prefix="hwnas-agent-") as tmp:
            paths = []
            for i, (data, shape) in enumerate(models):
                path = Path(tmp) / f"model{i}.onnx"
                path.write_bytes(data)
                paths.append((path, shape))
            del models
            try:
                rows = OnnxRuntimeMeasurer(profile).measure_interleaved(paths, passes, burst, min_seconds=min_seconds)
            except HwnasError as exc:
                raise RequestError(400, str(exc)) from None
        return {"rows": rows.tolist()}

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        sys.stderr.write(f"[hwnas agent] {self.address_string()} {format % args}\n")


def make_server(config: AgentConfig) -> AgentServer:
    """Bind the server (raises ConfigError with a fix when the port is taken)."""
    if not config.token:
        raise ConfigError("the agent needs a token; pass --token or set HWNAS_AGENT_TOKEN")
    try:
        return AgentServer(config)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc}); "
                          "pick another --port or stop the process using it") from None


def generate_token() -> str:
    return secrets.token_urlsafe(24)
