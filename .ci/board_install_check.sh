#!/usr/bin/env bash
# Board install check (issue 17): run the README's "Measure on an edge board" install, exactly as written
# there, in a fresh venv without torch or xgboost; then `hwnas --help`, `hwnas agent serve` on loopback with
# a token, one model measured through it, and a clean stop. Exits non-zero on any failure.
#
# Needs: python3 with venv, a package index for pip, and (outside the venv) the onnx package to write the
# test model (installed by `pip install -e '.[dev]'` in .ci/run before this runs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
unset PYTHONPATH

work=$(mktemp -d)
agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then kill "$agent_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The install line, taken from the README so the two cannot drift apart: exactly one line in the board
# section starting with `pip install` and holding `--no-deps`.
install_line=$(sed -n '/^## Measure on an edge board/,/^## /p' README.md | grep -E '^pip install .*--no-deps' || true)
if [ "$(printf '%s\n' "$install_line" | grep -c .)" != 1 ]; then
  echo "board install check: expected one 'pip install ... --no-deps ...' line in the README's board section" >&2
  exit 1
fi
echo "board install check: README says: $install_line"

# A tiny ONNX model, written with the host's onnx (the board venv has no onnx package).
python3 - "$work/model.onnx" <<'EOF'
import sys
sys.path.insert(0, "tests")
from agent_process import conv_relu_model
open(sys.argv[1], "wb").write(conv_relu_model())
EOF

python3 -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
(cd "$repo" && eval "$install_line")
cd "$work"  # away from the checkout, so only the installed hwnas can be imported

if python -c "import torch" 2>/dev/null || python -c "import xgboost" 2>/dev/null; then
  echo "board install check: torch or xgboost got installed; the board install must not pull them" >&2
  exit 1
fi
hwnas --help >/dev/null
hwnas agent serve --help >/dev/null

port=$(python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
export HWNAS_AGENT_TOKEN=board-install-check
hwnas agent serve --port "$port" --max-request-seconds 60 >"$work/agent.log" 2>&1 &
agent_pid=$!

python - "$port" "$work/model.onnx" <<'EOF'
import sys, time
from hwnas.errors import MeasurementError
from hwnas.latency.agent_client import AgentClient

client = AgentClient(f"http://127.0.0.1:{sys.argv[1]}", token="board-install-check", retries=0, timeout_s=30)
deadline = time.monotonic() + 60
while True:
    try:
        client.health()
        break
    except MeasurementError:
        if time.monotonic() > deadline:
            raise SystemExit("board install check: the agent did not answer /v1/health within 60 s")
        time.sleep(0.2)
stats = client.measure(open(sys.argv[2], "rb").read(), warmup=2, repeats=5, threads=1)
rows = client.measure_interleaved([(open(sys.argv[2], "rb").read(), None)] * 2, passes=3, burst=1, threads=1)
assert stats.repeats == 5 and stats.min_ms > 0 and rows.shape == (3, 2), (stats, rows)
heavy = [m for m in ("torch", "xgboost", "sklearn") if m in sys.modules]
assert not heavy, heavy
print(f"board install check: measured through the agent, min {stats.min_ms:.3f} ms")
EOF

kill "$agent_pid"
wait "$agent_pid" || { echo "board install check: the agent did not stop cleanly:" >&2; cat "$work/agent.log" >&2; exit 1; }
agent_pid=""
echo "board install check: ok"
