"""The ``tote`` command: ``tote serve`` runs the server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import trio

from tote.server import Server, ServerConfig


async def _serve(config: ServerConfig) -> None:
    server = Server(config)
    async with trio.open_nursery() as nursery:
        endpoints = await nursery.start(server.run)
        print(f"tote ready: websocket ws://{config.host}:{endpoints.ws_port}  "
              f"http http://{config.host}:{endpoints.http_port}  "
              f"data {config.data_dir}", flush=True)
        print(f"operator key: {endpoints.operator_key}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                server.request_stop()
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tote")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--data-dir", type=Path, default=Path("data"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--ws-port", type=int, default=8765)
    serve.add_argument("--http-port", type=int, default=8766)
    serve.add_argument("--operator-key", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        config = ServerConfig(data_dir=args.data_dir, host=args.host, ws_port=args.ws_port,
                              http_port=args.http_port, operator_key=args.operator_key)
        trio.run(_serve, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
