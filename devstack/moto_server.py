"""Run the AWS emulator (moto in server mode) on loopback.

``python -m devstack.moto_server --port 5000``. Started as its own process so
the demo and the end-to-end tests reach it exactly as they would reach AWS: over HTTP,
through the ``aws_default`` connection's ``endpoint_url``, with the project's emulator
extension (:mod:`devstack.emulator`) loaded into the server process.
"""

from __future__ import annotations

import argparse
import importlib
import os

from moto.server import main as moto_main

from devstack import emulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--double",
        action="append",
        default=[],
        help="module whose install() adds a stand-in for a system that can't run here (repeatable)",
    )
    args = parser.parse_args(argv)
    emulator.install()
    # the doubles that call AWS themselves (the emulated nodes' agents) call this server
    os.environ["BP_EMULATOR_URL"] = f"http://{args.host}:{args.port}"
    for module in args.double:
        importlib.import_module(module).install()
    moto_main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
