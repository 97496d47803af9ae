"""The edge agent, end to end: a real `hwnas agent serve` process, real HTTP, real ONNX Runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_process import QUICK, REPO, TOKEN, batch_body, conv_relu_model, free_port, raw, start_agent, stop

from hwnas.errors import MeasurementError
from hwnas.latency.agent import is_loopback
from hwnas.latency.agent_client import AgentClient
from hwnas.latency.device import DeviceProfile
from hwnas.latency.measure import RemoteMeasurer


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """One agent for most tests, with a 1 MB upload limit so the 413 path is cheap to hit."""
    port = free_port()
    log = tmp_path_factory.mktemp("agent") / "agent.log"
    proc = start_agent(port, log, "--max-upload-mb", "1")
    yield f"http://127.0.0.1:{port}"
    stop(proc)
    assert proc.returncode == 0, log.read_text()  # SIGTERM stops it cleanly


def test_remote_measurer_measures_through_agent(agent, monkeypatch):
    monkeypatch.setenv("HWNAS_TEST_AGENT_TOKEN", TOKEN)
    profile = DeviceProfile(name="test-edge", backend="remote", url=agent, token_env="HWNAS_TEST_AGENT_TOKEN",
                            threads=1, pin_cores=[min(os.sched_getaffinity(0))], warmup=2, repeats=5)
    stats = RemoteMeasurer(profile).measure_onnx(conv_relu_model())
    assert stats.repeats == 5 and stats.batch_size == 1
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms


def test_interleaved_endpoint_times_several_models(agent):
    client = AgentClient(agent, token=TOKEN, retries=0)
    rows = client.measure_interleaved([(conv_relu_model(), None), (conv_relu_model(), (1, 3, 16, 16))], passes=4,
                                      burst=1, warmup=1, threads=1)
    assert rows.shape == (4, 2) and (rows > 0).all()


@pytest.mark.parametrize("body, query, word", [
    (b"\x00\x00", "", "too short"),
    (b"\x00\x00\x00\x09{}", "", "does not fit"),
    (b"\x00\x00\x00\x02{}", "", "JSON header must be"),
    ("wrong-size", "", "announces"),
    ("garbage-model", "", "cannot load the model"),
    ("ok", "passes=0", "passes"),
    ("ok", "burst=99", "burst"),
    ("ok", "shape=1,3,8,8", "per model"),
])
def test_interleaved_endpoint_rejects_bad_input(agent, body, query, word):
    if body == "wrong-size":
        body = batch_body([conv_relu_model()], {"models": [{"bytes": 5, "shape": None}]})
    elif body == "garbage-model":
        body = batch_body([conv_relu_model(), b"\x00not an onnx model"])
    elif body == "ok":
        body = batch_body([conv_relu_model()])
    status, answer = raw(agent, "POST", f"/v1/measure-interleaved?warmup=1&{query}", body)
    assert status == 400 and word in answer["error"]
    assert raw(agent, "GET", "/v1/health")[0] == 200  # still serving


def test_profile_a_tiny_space_through_the_agent(agent, monkeypatch, tmp_path):
    """`hwnas profile` against the real agent: interleaved passes, split into groups under its 1 MB limit."""
    from tiny_spaces import TINY_ENTRIES, tiny_space

    from hwnas.latency.profiler import Profiler, ProfileOptions

    monkeypatch.setenv("HWNAS_TEST_AGENT_TOKEN", TOKEN)
    profile = DeviceProfile(name="test-edge", backend="remote", url=agent, token_env="HWNAS_TEST_AGENT_TOKEN",
                            threads=1, warmup=1, repeats=3)
    measurer = RemoteMeasurer(profile)
    measurer._max_bytes = 200_000  # force several groups, as a big space would under the agent's limit
    result = Profiler(tiny_space(), profile, tmp_path, ProfileOptions(calibrate=6, validate=3, seed=1),
                      measurer=measurer, progress=False).run()
    assert len(result.table.entries) == TINY_ENTRIES and result.table.meta["protocol"]["interleaved"]
    assert result.table.meta["runtime"]["backend"] == "remote" and result.table.meta["runtime"]["cpu_model"]
    assert all(e["repeats"] == 3 and e["ms"] > 0 for e in result.table.entries.values())
    assert result.report["validation"]["calibrated"]["n"] == 3
    slowdowns = result.table.meta["interleaved_group_slowdowns"]  # several groups, each timing the reference
    assert len(slowdowns) > 1 and min(slowdowns) == 1.0
    assert not list((tmp_path / "test-edge").glob("*.partial.jsonl"))  # the table replaced the checkpoint


def test_health_needs_no_token_but_others_do(agent):
    assert raw(agent, "GET", "/v1/health", token=None) == (200, {"status": "ok"})
    status, body = raw(agent, "GET", "/v1/info", token=None)
    assert status == 401 and "Bearer" in body["error"]
    status, body = raw(agent, "GET", "/v1/info", token="wrong")
    assert (status, body["error"]) == (401, "wrong token")
    status, body = raw(agent, "POST", "/v1/measure", conv_relu_model(), token=None)
    assert status == 401
    with pytest.raises(MeasurementError, match="HTTP 401.*HWNAS_AGENT_TOKEN"):
        AgentClient(agent, token="wrong").measure(conv_relu_model(), **QUICK)


def test_bad_bodies_get_400_with_reason(agent):
    status, body = raw(agent, "POST", "/v1/measure?warmup=1&repeats=2", b"\x00garbage, not a model")
    assert status == 400 and "cannot load the model" in body["error"]
    status, body = raw(agent, "POST", "/v1/measure?warmup=1&repeats=2", conv_relu_model(custom_op=True))
    assert status == 400 and "Frobnicate" in body["error"]
    status, body = raw(agent, "POST", "/v1/measure", conv_relu_model(), content_type="application/json")
    assert status == 400 and "octet-stream" in body["error"]
    client = AgentClient(agent, token=TOKEN, retries=0)
    with pytest.raises(MeasurementError, match="HTTP 400"):
        client.measure(b"garbage")


@pytest.mark.parametrize("query, word", [
    ("repeats=20000", "repeats"), ("warmup=-1", "warmup"), ("repeats=abc", "repeats"),
    ("pin=a,b", "pin"), ("colour=red", "colour"), ("provider=NoSuchExecutionProvider", "available"),
    ("shape=1,0", "shape"),
])
def test_bad_options_get_400(agent, query, word):
    status, body = raw(agent, "POST", f"/v1/measure?{query}", conv_relu_model())
    assert status == 400 and word in body["error"]


def test_oversized_upload_gets_413(agent):
    status, body = raw(agent, "POST", "/v1/measure", os.urandom(2 * 1024 * 1024))
    assert status == 413 and "1 MB" in body["error"]
    with pytest.raises(MeasurementError, match="HTTP 413"):
        AgentClient(agent, token=TOKEN, retries=0).measure(os.urandom(2 * 1024 * 1024))
    assert raw(agent, "GET", "/v1/health")[0] == 200  # still serving


def test_info_and_openapi(agent):
    info = AgentClient(agent, token=TOKEN).info()
    assert info["cpu_model"] and info["cpu_count"] >= 1 and info["memory_mb"] > 0
    assert "CPUExecutionProvider" in info["onnxruntime_providers"] and info["onnxruntime_version"]
    assert info["python_version"] and info["hwnas_version"] and info["max_upload_mb"] == 1
    status, spec = raw(agent, "GET", "/openapi.json", token=None)
    assert status == 200 and spec["openapi"].startswith("3.0")
    assert {"/v1/health", "/v1/info", "/v1/measure", "/v1/measure-interleaved"} <= set(spec["paths"])
    assert raw(agent, "GET", "/nope")[0] == 404


def test_concurrent_requests_are_serialised_and_all_succeed(agent):
    client = AgentClient(agent, token=TOKEN)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(client.measure(conv_relu_model(), **QUICK)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 3 and all(r.repeats == 5 for r in results)


def test_client_retries_through_agent_restart(tmp_path):
    port = free_port()
    log = tmp_path / "agent.log"
    stop(start_agent(port, log))  # it was up, now it is down mid-profile
    client = AgentClient(f"http://127.0.0.1:{port}", token=TOKEN, retries=6, backoff_s=0.2)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(stats=client.measure(conv_relu_model(), **QUICK)))
    worker.start()
    time.sleep(0.5)  # the client is now failing and backing off
    proc = start_agent(port, log)
    try:
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert result["stats"].repeats == 5
    finally:
        stop(proc)


def test_unreachable_agent_message():
    client = AgentClient(f"http://127.0.0.1:{free_port()}", token=TOKEN, retries=1, backoff_s=0.01)
    with pytest.raises(MeasurementError, match=r"unreachable after 2 attempts.*hwnas agent serve"):
        client.health()


def test_client_retries_5xx_but_not_4xx():
    calls = {"n": 0}

    class Flaky(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            calls["n"] += 1
            status = 503 if calls["n"] == 1 else (200 if self.path == "/v1/health" else 403)
            data = json.dumps({"status": "ok"} if status == 200 else {"error": f"e{status}"}).encode()
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "1")  # a full device queue
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = AgentClient(f"http://127.0.0.1:{server.server_address[1]}", retries=2, backoff_s=0.01)
        started = time.monotonic()
        assert client.health() == {"status": "ok"} and calls["n"] == 2
        assert time.monotonic() - started >= 1.0  # waited as Retry-After asked, not the 0.01 s back-off
        with pytest.raises(MeasurementError, match="HTTP 403.*e403"):
            client.info()
        assert calls["n"] == 3  # 4xx is not retried
    finally:
        server.shutdown()
        server.server_close()


def test_generated_token_is_printed_once(tmp_path):
    port, log = free_port(), tmp_path / "agent.log"
    proc = start_agent(port, log, token=None)
    try:
        lines = [ln for ln in log.read_text().splitlines() if ln.startswith("token")]
        assert len(lines) == 1
        token = lines[0].rsplit(" ", 1)[1]
        assert len(token) >= 20
        assert AgentClient(f"http://127.0.0.1:{port}", token=token).info()["cpu_count"] >= 1
    finally:
        stop(proc)


def test_agent_runs_without_torch(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(conv_relu_model())
    script = f"""
import sys, threading
import hwnas.cli.agent
from hwnas.cli import build_parser
from hwnas.latency.agent import AgentConfig, make_server
from hwnas.latency.agent_client import AgentClient
build_parser(only="agent")
server = make_server(AgentConfig(port=0, token="t"))
threading.Thread(target=server.serve_forever, daemon=True).start()
stats = AgentClient("http://127.0.0.1:%d" % server.server_address[1], token="t").measure(
    open({str(model)!r}, "rb").read(), warmup=1, repeats=2)
assert stats.repeats == 2
heavy = [m for m in ("torch", "xgboost", "sklearn") if m in sys.modules]
assert not heavy, heavy
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("board.local")
