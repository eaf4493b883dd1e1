"""The `worker` command line: one module per subcommand, each exposing `add_parser` and `run`."""

import argparse
import importlib
import sys

from worker.logs import configure_logging

# subcommand name -> module under worker.cli; modules are imported only when chosen,
# so `worker gather` never pays for importing paddle.
SUBCOMMANDS: dict[str, str] = {
    "make-tiny-model": "worker.cli.make_tiny_model",
    "bench": "worker.cli.bench",
    "run-batch": "worker.cli.run_batch",
    "run-shard": "worker.cli.run_shard",
    "gather": "worker.cli.gather",
    "clean-staging": "worker.cli.clean_staging",
    "build-kernels": "worker.cli.build_kernels",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_parser(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
