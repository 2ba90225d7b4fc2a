"""Run the gateway alone in front of providers something else runs.

    python -m gateway.serve --config providers.yaml

Serves ``create_app(config, StaticView(config))`` under uvicorn (uvloop, httptools) on
``gateway.host:gateway.port`` until SIGINT/SIGTERM. Used by the tests and the benchmark.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from gateway.app import check_bind, create_app, run_loop, server_config
from gateway.external import StaticView
from supervisor.config import Config, ConfigError, load


async def serve(config: Config) -> None:
    """Probe the providers and serve the gateway until uvicorn is told to exit."""
    view = StaticView(config)
    await view.open()
    server = uvicorn.Server(server_config(create_app(config, view), config))
    try:
        await server.serve()
    finally:
        await view.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=os.environ.get("UNIGW_CONFIG",
                                                                  "providers.yaml"))
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"unigw gateway: {exc}", file=sys.stderr)
        return 1
    problem = check_bind(config)
    if problem:
        print(f"unigw gateway: {problem}", file=sys.stderr)
        return 1
    print(f"unigw gateway on http://{config.gateway.host}:{config.gateway.port}/v1",
          file=sys.stderr, flush=True)
    run_loop(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
