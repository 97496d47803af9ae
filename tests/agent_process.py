"""Helpers for the agent tests: tiny ONNX models, and a real `hwnas agent serve` process on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from hwnas.errors import MeasurementError
from hwnas.latency.agent_client import AgentClient

TOKEN = "test-token-123"
REPO = Path(__file__).resolve().parents[1]
CLI = "import sys; from hwnas.cli import main; sys.exit(main())"  # `python -m hwnas.cli` lacks a __main__.py
QUICK = {"warmup": 2, "repeats": 5, "threads": 1}


def conv_relu_model(custom_op: bool = False) -> bytes:
    """Conv+Relu on 1x3x16x16 (opset 17); with ``custom_op`` the Relu is an op no runtime knows."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    act = helper.make_node("Frobnicate", ["c"], ["y"], domain="com.example") if custom_op else \
        helper.make_node("Relu", ["c"], ["y"])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), act], "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], initializer=[weight])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.example", 1)] if custom_op else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(port: int, log: Path, *extra: str, token: str | None = TOKEN,
                health_url: str | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", CLI, "agent", "serve", "--port", str(port), *extra]
    if token:
        args += ["--token", token]
    env = {k: v for k, v in os.environ.items() if k != "HWNAS_AGENT_TOKEN"}
    with open(log, "ab") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode}:\n{log.read_text()}")
        try:
            AgentClient(health_url or f"http://127.0.0.1:{port}", retries=0, timeout_s=2).health()
            return proc
        except MeasurementError:
            time.sleep(0.1)
    stop(proc)
    raise AssertionError(f"agent did not become healthy:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def raw(url: str, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
        content_type: str = "application/octet-stream") -> tuple[int, dict]:
    headers = {"Content-Type": content_type} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def batch_body(models: list[bytes], header: dict | None = None) -> bytes:
    header = header or {"models": [{"bytes": len(m), "shape": None} for m in models]}
    text = json.dumps(header).encode()
    return len(text).to_bytes(4, "big") + text + b"".join(models)


def _model(nodes: list, inputs: list, outputs: list, initializers: list = ()) -> bytes:
    model = helper.make_model(helper.make_graph(nodes, "m", inputs, outputs, initializer=list(initializers)),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def runaway_loop_model(iterations: int = 10**15) -> bytes:
    """A few hundred bytes that never finish: a Loop adding 1 to a scalar ``iterations`` times."""
    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Add", ["x_in", "one"], ["x_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1])])
    return _model(
        [helper.make_node("Loop", ["n", "cond", "x"], ["y"], body=body)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array(iterations, np.int64), "n"), numpy_helper.from_array(np.array(True), "cond"),
         one])


def expand_model(side: int) -> bytes:
    """A tiny model whose one op allocates a side x side float32 tensor (side=20000: 1.6 GB)."""
    return _model([helper.make_node("Expand", ["x", "shape"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [side, side])],
                  [numpy_helper.from_array(np.array([side, side], np.int64), "shape")])


def identity_model(shape: list[int]) -> bytes:
    """Identity on an input of ``shape``: its input alone is the allocation."""
    return _model([helper.make_node("Identity", ["x"], ["y"])], [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])


def matmul_model(rows: int = 256, side: int = 512) -> bytes:
    """(rows x side) @ (side x side): milliseconds per run, so 20,000 runs take far longer than seconds."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((side, side)).astype(np.float32), "w")
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, side])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, side])], [weight])
