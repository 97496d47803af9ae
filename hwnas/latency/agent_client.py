"""Client for the edge agent (``hwnas agent serve``), built on urllib so a board needs nothing extra.

A profiling run sends hundreds of models; boards reboot, Wi-Fi drops and agents get restarted.
Connection errors, timeouts and 5xx answers are therefore retried with exponential back-off,
while 4xx answers (bad token, bad model, bad option) are the caller's fault and fail at once with
the agent's reason.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np

from hwnas.errors import ConfigError, MeasurementError
from hwnas.latency.stats import LatencyStats

_RETRYABLE = (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout,
              http.client.HTTPException, OSError)


class AgentClient:
    """Talks to one agent. ``retries`` extra attempts after the first, waiting ``backoff_s * 2**k``."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 60.0,
                 retries: int = 3, backoff_s: float = 0.5) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"agent url {url!r} is not an http(s) address; use e.g. http://127.0.0.1:8765")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/v1/health", auth=False)

    def info(self) -> dict[str, Any]:
        return self._request("GET", "/v1/info")

    def measure(self, model_bytes: bytes, **options: Any) -> LatencyStats:
        """Measure an ONNX model on the agent. Options: warmup, repeats, threads, pin, batch, provider, shape."""
        query = {k: _query_value(v) for k, v in options.items() if v is not None}
        body = self._request("POST", "/v1/measure", data=bytes(model_bytes), query=query)
        return LatencyStats.from_dict(body)

    def measure_interleaved(self, models: list[tuple[bytes, tuple[int, ...] | None]], passes: int, burst: int = 2,
                            **options: Any) -> np.ndarray:
        """Time several models on the agent in round-robin passes -> (passes, models) milliseconds."""
        header = json.dumps({"models": [{"bytes": len(m), "shape": list(sh) if sh else None}
                                        for m, sh in models]}).encode("utf-8")
        body = len(header).to_bytes(4, "big") + header + b"".join(bytes(m) for m, _ in models)
        query = {k: _query_value(v) for k, v in {**options, "passes": passes, "burst": burst}.items()
                 if v is not None}
        answer = self._request("POST", "/v1/measure-interleaved", data=body, query=query)
        try:
            rows = np.asarray(answer["rows"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise MeasurementError(f"agent at {self.url} answered without a rows matrix; is it an hwnas agent "
                                   "of this version?") from None
        if rows.ndim != 2 or rows.shape[1] != len(models) or rows.shape[0] < passes or not np.all(np.isfinite(rows)):
            raise MeasurementError(f"agent at {self.url} answered a {rows.shape} matrix, expected at least "
                                   f"({passes}, {len(models)})")
        return rows

    def _request(self, method: str, path: str, data: bytes | None = None,
                 query: dict[str, str] | None = None, auth: bool = True) -> dict[str, Any]:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        last, asked_wait = "", 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(max(self.backoff_s * 2 ** (attempt - 1), asked_wait))
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return _json_body(response.read(), self.url)
            except urllib.error.HTTPError as exc:
                reason = _error_reason(exc)
                if exc.code < 500:
                    raise MeasurementError(self._refusal(exc.code, reason)) from None
                last = f"HTTP {exc.code}: {reason}"
                asked_wait = _retry_after(exc)
            except _RETRYABLE as exc:
                last, asked_wait = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}", 0.0
        raise MeasurementError(
            f"agent at {self.url} unreachable after {self.retries + 1} attempts (last error: {last}); "
            "is `hwnas agent serve` running there, and is the url/port in the device profile right?")

    def _refusal(self, code: int, reason: str) -> str:
        hint = {401: "set HWNAS_AGENT_TOKEN (or the profile's token_env) to the token the agent printed at start",
                413: "the model is larger than the agent's --max-upload-mb; restart the agent with a larger limit",
                422: "the model broke one of the agent's per-request limits (GET /v1/info lists them)"}
        return f"agent at {self.url} refused the request (HTTP {code}): {reason}" + (
            f"; {hint[code]}" if code in hint else "")


def _query_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(int(v)) for v in value)
    return str(value)


def _retry_after(exc: urllib.error.HTTPError) -> float:
    """Seconds a busy agent asked us to wait (503 + Retry-After: its device queue is full), at most 60."""
    try:
        return min(60.0, max(0.0, float(exc.headers.get("Retry-After", 0))))
    except (TypeError, ValueError):
        return 0.0


def _json_body(raw: bytes, url: str) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MeasurementError(f"{url} answered with something that is not JSON; is it an hwnas agent?") from None
    if not isinstance(body, dict):
        raise MeasurementError(f"{url} answered with unexpected JSON; is it an hwnas agent?")
    return body


def _error_reason(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    try:
        body = json.loads(raw.decode("utf-8"))
        return str(body.get("error", body)) if isinstance(body, dict) else str(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", errors="replace")[:300] or str(exc.reason)
