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
the board it runs on. It needs only numpy, onnxruntime and PyYAML (pip install 'hwnas[agent]').

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
                       help="largest model accepted, in MB (default 64); bigger uploads get HTTP 413")
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
    if args.max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb {args.max_upload_mb:g} must be positive (default 64)")
    token = args.token or os.environ.get(TOKEN_ENV, "").strip()
    generated = not token
    token = token or generate_token()
    server = make_server(AgentConfig(host=args.host, port=args.port, token=token,
                                     max_upload_mb=args.max_upload_mb))
    host, port = server.server_address[:2]
    if not is_loopback(args.host):
        print(f"WARNING: listening on {args.host}, reachable from the network. Anyone with the token can run "
              "models here; prefer the default 127.0.0.1 with an SSH tunnel.", file=sys.stderr)
    print(f"hwnas agent listening on http://{host}:{port} (max upload {args.max_upload_mb:g} MB)", flush=True)
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
