"""``hwnas agent``: run the latency agent on an edge board, or query one.

Imports nothing heavier than numpy/onnxruntime so it runs on a board without torch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from hwnas.errors import ConfigError

DESCRIPTION = """\
Run the edge latency agent on the target board, or query a running one.

The agent times ONNX models sent by `hwnas profile --device edge-agent` with ONNX Runtime on
the board it runs on. It needs only numpy, onnxruntime and PyYAML; see the README section
"Measure on an edge board" for the install. Each measurement runs in a worker process under a
wall-time limit, a memory limit and at most one thread per core; a model that overruns is stopped
(HTTP 422) and the next request is served at once.

Examples:
  # on the board (token printed at start unless given; prefer the env var over --token):
  export HWNAS_AGENT_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(24))')
  hwnas agent serve --port 8765
  # on the host, through an SSH tunnel (the agent binds 127.0.0.1 by default):
  ssh -N -L 8765:127.0.0.1:8765 pi@board &
  hwnas agent info --url http://127.0.0.1:8765
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agent", help="run or query the edge latency agent", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="agent_command", metavar="ACTION", required=True)

    serve = verbs.add_parser("serve", help="serve latency measurements over HTTP", description=DESCRIPTION,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; anything else is reachable from the network)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    serve.add_argument("--token", default=None,
                       help="bearer token clients must send (default: $HWNAS_AGENT_TOKEN, else a random one "
                            "printed once); note a command-line token is visible in `ps`")
    serve.add_argument("--max-upload-mb", type=float, default=64.0,
                       help="largest upload accepted, in MB (default 64); bigger ones get HTTP 413 unread")
    serve.add_argument("--max-memory-mb", type=float, default=None,
                       help="address-space limit of the measurement process, in MB (default: half this "
                            "board's memory); inputs may hold a quarter of it in float32")
    serve.add_argument("--max-request-seconds", type=float, default=120.0,
                       help="wall time one measurement may take before it is stopped with HTTP 422 (default 120)")
    serve.add_argument("--max-queue", type=int, default=8,
                       help="requests admitted for the device at once, running or waiting; more get HTTP 503 "
                            "with Retry-After (default 8)")
    serve.add_argument("--read-timeout-s", type=float, default=60.0,
                       help="a client whose upload stalls this long gets HTTP 408 (default 60)")
    serve.set_defaults(func=run)

    info = verbs.add_parser("info", help="print a running agent's device facts", description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    info.add_argument("--url", required=True, help="agent address, e.g. http://127.0.0.1:8765")
    info.add_argument("--token", default=None, help="bearer token (default: $HWNAS_AGENT_TOKEN)")
    info.add_argument("--timeout-s", type=float, default=10.0, help="per-request timeout (default 10)")
    info.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return {"serve": serve, "info": info}[args.agent_command](args)


def serve(args: argparse.Namespace) -> int:
    from hwnas.latency.agent import TOKEN_ENV, AgentConfig, generate_token, is_loopback, make_server

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a TCP port; use 1..65535 (default 8765)")
    token = args.token or os.environ.get(TOKEN_ENV, "").strip()
    generated = not token
    token = token or generate_token()
    limits = {"max_upload_mb": args.max_upload_mb, "max_request_s": args.max_request_seconds,
              "max_queue": args.max_queue, "read_timeout_s": args.read_timeout_s}
    if args.max_memory_mb is not None:
        limits["max_memory_mb"] = args.max_memory_mb
    config = AgentConfig(host=args.host, port=args.port, token=token, **limits)  # validates every limit
    server = make_server(config)
    host, port = server.server_address[:2]
    if not is_loopback(args.host):
        print(f"WARNING: listening on {args.host}, reachable from the network. Anyone with the token can run "
              "models here; prefer the default 127.0.0.1 with an SSH tunnel.", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"hwnas agent listening on http://{shown}:{port} (max upload {config.max_upload_mb:g} MB, "
          f"{config.max_request_s:g} s and {config.max_memory_mb:g} MB per measurement, queue "
          f"{config.max_queue})", flush=True)
    if generated:
        print(f"token (shown once; export {TOKEN_ENV}=<token> on the host): {token}", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("hwnas agent stopped", flush=True)
    finally:
        server.server_close()
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (systemd, kill) stops the server as cleanly as Ctrl-C."""
    raise KeyboardInterrupt


def info(args: argparse.Namespace) -> int:
    from hwnas.latency.agent_client import AgentClient

    token = args.token or os.environ.get("HWNAS_AGENT_TOKEN", "").strip() or None
    client = AgentClient(args.url, token=token, timeout_s=args.timeout_s, retries=1)
    print(json.dumps(client.info(), indent=2))
    return 0
