"""The edge agent: a small HTTP server that times ONNX models on the board it runs on.

Runs with only numpy + onnxruntime + PyYAML (no torch, no web framework: stdlib
``http.server.ThreadingHTTPServer``). The host does the search; the board only answers
"how long does this model take here?".

Security model: it binds 127.0.0.1 unless told otherwise (reach it over an SSH tunnel, or pass
``--host`` on a trusted network); every endpoint but ``/v1/health`` and ``/openapi.json`` needs
``Authorization: Bearer <token>``, compared in constant time; models are only ever parsed by ONNX
Runtime (no pickle) from a temporary directory that is removed afterwards.

Bounded per request, because a model is code: uploads are size-capped before they are read and
streamed to disk rather than buffered; at most ``max_queue`` requests wait for the device (more get
503 with Retry-After before their body is read); each measurement runs in a worker process
(:mod:`hwnas.latency.agent_worker`) with a wall-time limit, an address-space limit and at most one
ONNX Runtime thread per core, and is killed when it overruns or its client hangs up. Every client
mistake gets a 4xx JSON body with the reason (:mod:`hwnas.latency.agent_request`), never a 500.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import ipaddress
import json
import math
import secrets
import select
import socket
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

from hwnas.errors import ConfigError
from hwnas.latency.agent_openapi import openapi_spec
from hwnas.latency.agent_request import (
    CPU_COUNT, MAX_HEADER_BYTES, MAX_RESULT_CELLS, RequestError, parse_batch_header, parse_interleaved_options,
    parse_measure_options,
)
from hwnas.latency.agent_worker import ClientGone, MeasurementWorker
from hwnas.latency.measure import host_facts, memory_mb

DEFAULT_PORT = 8765
TOKEN_ENV = "HWNAS_AGENT_TOKEN"
MAX_DRAIN_BYTES = 64 * 1024 * 1024  # read (and discard) at most this much of a refused upload
LISTEN_BACKLOG = 128  # connections the kernel holds while the accept loop catches up (64+ clients at once)
MIN_MEMORY_MB = 256  # the worker needs ~200 MB of address space to import numpy and onnxruntime
_CHUNK = 1 << 16


def default_memory_mb() -> float:
    """Half of this machine's memory (at least 512 MB): the worker's address-space limit by default."""
    return float(max(512, (memory_mb() or 1024) // 2))


@dataclass(frozen=True)
class AgentConfig:
    """Where the agent listens, its token, and the limits every request runs under (CLI flags in brackets)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str = ""
    max_upload_mb: float = 64.0  # [--max-upload-mb] largest body
    max_memory_mb: float = field(default_factory=default_memory_mb)  # [--max-memory-mb] worker address space
    max_request_s: float = 120.0  # [--max-request-seconds] wall time of one measurement
    max_queue: int = 8  # [--max-queue] requests admitted for the device at once (running + waiting)
    read_timeout_s: float = 60.0  # [--read-timeout-s] a stalled upload is dropped after this long

    def __post_init__(self) -> None:
        _positive("--max-upload-mb", self.max_upload_mb, 1e6)
        _positive("--max-memory-mb", self.max_memory_mb, 1e9, low=MIN_MEMORY_MB)
        _positive("--max-request-seconds", self.max_request_s, 86400)
        _positive("--read-timeout-s", self.read_timeout_s, 3600)
        if not isinstance(self.max_queue, int) or not 1 <= self.max_queue <= 1024:
            raise ConfigError(f"--max-queue {self.max_queue!r} must be an integer from 1 to 1024 (default 8)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port} is not a TCP port; use 1..65535 (default {DEFAULT_PORT})")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_memory_bytes(self) -> int:
        return int(self.max_memory_mb * 2**20)

    @property
    def max_input_elements(self) -> int:
        """A quarter of the memory limit in float32: the model's inputs, intermediates and weights need the rest."""
        return self.max_memory_bytes // 16

    def limits(self) -> dict[str, Any]:
        """What a client may send and use, as reported by ``/v1/info`` and ``/openapi.json``."""
        out = {k: v for k, v in asdict(self).items() if k not in ("host", "port", "token")}
        return {**out, "max_input_elements": self.max_input_elements, "max_threads": CPU_COUNT}


def _positive(flag: str, value: float, high: float, low: float = 0.0) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not low < value <= high:
        raise ConfigError(f"{flag} {value!r} must be a finite number above {low:g} and at most {high:g}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AgentServer(ThreadingHTTPServer):
    """Holds the agent's config, its measurement worker and the bounded queue in front of it."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.address_family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self.queue = threading.BoundedSemaphore(config.max_queue)
        self.worker = MeasurementWorker(config.max_memory_bytes, config.max_request_s, config.max_input_elements)
        super().__init__((config.host, config.port), AgentHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()

    def server_close(self) -> None:
        super().server_close()
        self.worker.close()


_GET = {"/v1/health": "_health", "/v1/info": "_info", "/openapi.json": "_openapi"}
_POST = {"/v1/measure": "_measure", "/v1/measure-interleaved": "_measure_interleaved"}


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = "hwnas-agent/1"

    def setup(self) -> None:
        self.timeout = self.server.config.read_timeout_s  # a client stalling this long is dropped
        self._body_left = 0
        super().setup()

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch(_GET)

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(_POST)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unknown method, ...) as JSON; an unknown method is 405."""
        headers = {}
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, headers = 405, {"Allow": "GET, POST"}
            message = f"method {self.command} is not allowed; use GET or POST (see GET /openapi.json)"
        self.close_connection = True
        self._send(code, {"error": message or HTTPStatus(code).phrase}, headers)

    def _dispatch(self, routes: dict[str, str]) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path not in routes:
                if path in _GET or path in _POST:
                    raise RequestError(405, f"{path} does not take {self.command}; see GET /openapi.json",
                                       {"Allow": "GET" if path in _GET else "POST"})
                raise RequestError(404, f"no endpoint {self.command} {path}; see GET /openapi.json")
            self._send(200, getattr(self, routes[path])())
        except RequestError as exc:
            self._refuse(exc)
        except ClientGone:
            self.log_message("client hung up; its measurement was stopped")
            self.close_connection = True
        except Exception as exc:  # a bug, not bad input: report it, keep serving
            self.log_error("internal error: %r", exc)
            self._send(500, {"error": f"internal agent error: {type(exc).__name__}: {exc}"})

    def _refuse(self, exc: RequestError) -> None:
        """Answer a refusal at once, then discard (never buffer) what the client still sends."""
        unread = self._body_left
        if unread:
            self.close_connection = True
        self._send(exc.status, {"error": exc.reason}, exc.headers)
        if unread:
            self._discard(min(unread, MAX_DRAIN_BYTES))

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="hwnas-agent"')
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
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
        return openapi_spec(self.server.config.limits())

    def _info(self) -> dict[str, Any]:
        self._authorize()
        return {**host_facts(), **self.server.config.limits()}

    # ---- the upload ---------------------------------------------------------------------------

    def _announce_body(self, what: str) -> int:
        """Check the headers of an upload (type, length, limit) before a byte of it is read."""
        self._body_left = self._content_length()
        if self.headers.get_content_type() != "application/octet-stream":
            raise RequestError(400, f"Content-Type must be application/octet-stream ({what})")
        config = self.server.config
        if self._body_left > config.max_upload_bytes:
            raise RequestError(413, f"model is {self._body_left / 2**20:.1f} MB, over this agent's limit of "
                                    f"{config.max_upload_mb:g} MB (--max-upload-mb)")
        if self._body_left <= 0:
            raise RequestError(400, f"empty body; POST {what}")
        return self._body_left

    def _content_length(self) -> int:
        text = self.headers.get("Content-Length")
        if text is None:
            raise RequestError(411, "Content-Length is required; send the model as one octet-stream body")
        if not text.strip().isdigit() or len(text.strip()) > 15:
            raise RequestError(400, f"Content-Length {text[:40]!r} is not a byte count")
        return int(text)

    def _read_exact(self, size: int, sink: Any = None) -> bytes:
        """Read ``size`` body bytes (into ``sink`` if given, else returned); a stall -> 408, a short body -> 400."""
        parts, got = [], 0
        while got < size:
            try:
                chunk = self.rfile.read1(min(_CHUNK, size - got))
            except (TimeoutError, socket.timeout):
                raise self._broken_body(408, f"the body stalled after {got} of the {size} bytes expected here for "
                                             f"{self.server.config.read_timeout_s:g} s (--read-timeout-s); send as "
                                             "many bytes as Content-Length says") from None
            if not chunk:
                raise self._broken_body(400, f"the body ended {size - got} bytes short of its Content-Length; "
                                             "resend it")
            got += len(chunk)
            self._body_left -= len(chunk)
            if sink is None:
                parts.append(chunk)
            else:
                sink.write(chunk)
        return b"".join(parts)

    def _broken_body(self, status: int, reason: str) -> RequestError:
        """The upload cannot be finished: nothing left to drain, and the connection is not reusable."""
        self._body_left, self.close_connection = 0, True
        return RequestError(status, reason)

    def _save(self, path: Path, size: int) -> None:
        with open(path, "wb") as fh:
            self._read_exact(size, sink=fh)

    def _discard(self, size: int) -> None:
        with contextlib.suppress(OSError, RequestError):
            while size > 0:
                chunk = self.rfile.read1(min(_CHUNK, size))
                if not chunk:
                    break
                size -= len(chunk)

    @contextlib.contextmanager
    def _device_slot(self) -> Iterator[Path]:
        """A place in the device queue (else 503 before the body is read) and a temporary folder for the models."""
        if not self.server.queue.acquire(blocking=False):
            retry = max(1, math.ceil(min(self.server.config.max_request_s, 10)))
            raise RequestError(503, f"{self.server.config.max_queue} requests are already queued for this device "
                                    f"(--max-queue); retry in {retry} s", {"Retry-After": str(retry)})
        try:
            with tempfile.TemporaryDirectory(prefix="hwnas-agent-") as tmp:
                yield Path(tmp)
        finally:
            self.server.queue.release()

    # ---- measuring ----------------------------------------------------------------------------

    def _measure(self) -> dict[str, Any]:
        self._authorize()
        length = self._announce_body("the raw ONNX model bytes")
        profile, shape = parse_measure_options(self._query(), self.server.config.max_input_elements)
        with self._device_slot() as tmp:
            self._save(tmp / "model.onnx", length)
            job = {"kind": "measure", "profile": profile.to_dict(),
                   "models": [[str(tmp / "model.onnx"), list(shape) if shape else None]]}
            return self.server.worker.run(job, self._client_gone)

    def _measure_interleaved(self) -> dict[str, Any]:
        self._authorize()
        length = self._announce_body("a 4-byte header length, a JSON header and the models")
        profile, loop = parse_interleaved_options(self._query(), self.server.config.max_input_elements)
        with self._device_slot() as tmp:
            n = int.from_bytes(self._read_exact(min(4, length)), "big")
            if not 0 < n <= MAX_HEADER_BYTES or 4 + n > length:
                raise RequestError(400, f"JSON header length {n} does not fit the {length}-byte body "
                                        f"(at most {MAX_HEADER_BYTES} bytes)" if length >= 4 else
                                        "body too short: expected a 4-byte header length, a JSON header and the models")
            parts = parse_batch_header(self._read_exact(n), self.server.config.max_input_elements)
            if sum(p.size for p in parts) != length - 4 - n:
                raise RequestError(400, f"the header announces {sum(p.size for p in parts)} model bytes but the "
                                        f"body holds {length - 4 - n}")
            if loop.passes * len(parts) > MAX_RESULT_CELLS:
                raise RequestError(400, f"passes x models = {loop.passes * len(parts):,} is over {MAX_RESULT_CELLS:,}; "
                                        "send fewer passes or split the models over several requests")
            models = []
            for j, part in enumerate(parts):
                self._save(tmp / f"model{j}.onnx", part.size)
                models.append([str(tmp / f"model{j}.onnx"), list(part.shape) if part.shape else None])
            job = {"kind": "interleaved", "profile": profile.to_dict(), "models": models,
                   "passes": loop.passes, "burst": loop.burst, "min_seconds": loop.min_seconds}
            return self.server.worker.run(job, self._client_gone)

    def _query(self) -> str:
        return urllib.parse.urlsplit(self.path).query

    def _client_gone(self) -> bool:
        """True once the client closed its connection (its answer would go nowhere)."""
        try:
            if not select.select([self.connection], [], [], 0)[0]:
                return False
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        sys.stderr.write(f"[hwnas agent] {self.address_string()} {format % args}\n")


def make_server(config: AgentConfig) -> AgentServer:
    """Bind the server and start its worker; a bind failure raises ConfigError naming the real cause."""
    if not config.token:
        raise ConfigError("the agent needs a token; pass --token or set HWNAS_AGENT_TOKEN")
    try:
        server = AgentServer(config)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve --host {config.host!r} ({exc.strerror}); give an IP address such as "
                          "127.0.0.1 or ::1") from None
    except OSError as exc:
        raise ConfigError(f"cannot listen on {config.host} port {config.port}: {_bind_hint(exc)}") from None
    server.worker.start()
    return server


def _bind_hint(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return f"{reason}; pick another --port or stop the process using it"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return f"{reason}; --host must be an address of this machine (127.0.0.1, ::1, or a network interface's)"
    if exc.errno == errno.EACCES:
        return f"{reason}; ports below 1024 need root, pick --port 1024 or above"
    return reason


def generate_token() -> str:
    return secrets.token_urlsafe(24)
