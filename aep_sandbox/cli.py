"""``aep-sandbox serve --port P --data-dir D``: run the local AEP on its own."""

import argparse
import faulthandler
import json
import logging
import os
import signal
import socket
import sys

import uvicorn

from .app import create_app
from .config import SandboxConfig
from .lifecycle import KINDS, Pace, parse_paces
from .pgwire import start_pg_server
from .ports import free_port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aep-sandbox", description="A local Adobe Experience Platform.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve AEP's HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--data-dir", default=os.environ.get("AEP_SANDBOX_DIR"),
                       required="AEP_SANDBOX_DIR" not in os.environ,
                       help="the directory that holds the sandbox's state (default: $AEP_SANDBOX_DIR)")
    serve.add_argument("--pg-port", type=int, default=0,
                       help="port of Query Service's PostgreSQL endpoint (default: a free one; "
                            "GET /data/foundation/query/connection_parameters tells)")
    serve.add_argument("--dlz-bucket", help="keep the Data Landing Zone in this S3 bucket (on AWS_ENDPOINT_URL) "
                                            "instead of a local directory")
    serve.add_argument("--dlz", choices=["azure", "s3", "local"], default=None,
                       help="where the Data Landing Zone lives (default: $AEP_SANDBOX_DLZ, else s3 with --dlz-bucket, "
                            "azure when Azurite's azurite-blob is installed, local otherwise)")
    serve.add_argument("--landing-zone-dir", help="where the Data Landing Zone keeps files "
                                                  "(default: DATA_DIR/landing-zone)")
    serve.add_argument("--token-ttl", type=int, default=86399, help="IMS token lifetime in seconds")
    serve.add_argument("--async-delay", type=float, default=0.0,
                       help="seconds every asynchronous lifecycle (batch, query, job, run) waits (delay:S for all)")
    serve.add_argument("--lifecycle", action="append", default=[],
                       help="how one kind of lifecycle moves on, e.g. batch=manual:2 (after two reads) or "
                            "query=delay:1.5; kinds: batch, query, segment_job, export_job, flow_run "
                            "(default: $AEP_SANDBOX_LIFECYCLES, else immediate)")
    serve.add_argument("--faults", help='JSON list of injected faults, e.g. [{"status": 429, "times": 2}]')
    serve.add_argument("--fault-seed", type=int, default=None,
                       help="seed of the faults drawn at a rate; the log says which seed a run used")
    sub.add_parser("credentials", help="print the credentials of a data dir").add_argument("--data-dir", required=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # Everything the sandbox writes (datasets, exports, its metadata, Azurite's blobs) is its owner's alone.
    os.umask(0o077)
    if args.command == "credentials":
        print(json.dumps(SandboxConfig(data_dir=args.data_dir).credentials.__dict__, indent=2))
        return
    # A native crash (a library's abort, a segfault) leaves every thread's Python stack in the sandbox's log.
    faulthandler.enable()
    # A stop request ends the sandbox with SIGTERM's exit status even when the parent ignored SIGTERM (a child
    # inherits that): uvicorn shuts down gracefully, then raises the signal again, and only the default action
    # ends the process. Otherwise the interpreter would finalise with the server's threads still running.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The HTTP port is bound first, so the Query Service port, picked among the free ones, cannot be it. It listens
    # only once uvicorn serves (asyncio calls listen()), so a connection still means the sandbox is ready.
    http = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    http.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    http.bind((args.host, args.port))
    paces = {kind: Pace("delay", seconds=args.async_delay) for kind in KINDS} if args.async_delay else {}
    paces.update(parse_paces(",".join(args.lifecycle)))
    config = SandboxConfig(data_dir=args.data_dir, landing_zone_dir=args.landing_zone_dir, dlz_bucket=args.dlz_bucket,
                           dlz=args.dlz, token_ttl_s=args.token_ttl, lifecycles=paces,
                           faults=SandboxConfig.parse_faults(args.faults), fault_seed=args.fault_seed,
                           pg_address=(args.host, args.pg_port or free_port()))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    creds = config.credentials
    print(f"AEP sandbox on http://{args.host}:{args.port} (IMS: http://{args.host}:{args.port}/ims/token/v3) "
          f"org={creds.org_id} client_id={creds.client_id} data_dir={config.data_dir} dlz={config.dlz}",
          file=sys.stderr, flush=True)
    app = create_app(config)
    start_pg_server(app.state.platform, *config.pg_address)
    print(f"Query Service PostgreSQL endpoint on {args.host}:{config.pg_address[1]}", file=sys.stderr, flush=True)
    SandboxServer(uvicorn.Config(app, log_level="warning", timeout_keep_alive=75), app.state.platform).run(
        sockets=[http])


class SandboxServer(uvicorn.Server):
    """Uvicorn's server, which on SIGTERM or Ctrl-C first answers the held reads: a graceful shutdown waits for
    every request under way, and a read held by ``Prefer: wait`` would keep it waiting for up to a minute."""

    def __init__(self, config: uvicorn.Config, platform) -> None:
        super().__init__(config)
        self.platform = platform

    def handle_exit(self, sig, frame) -> None:
        self.platform.lifecycles.stop_holding()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    main()
