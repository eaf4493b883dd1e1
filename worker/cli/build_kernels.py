"""`worker build-kernels`: compile the CPU attention op ahead of time (for an image build)."""

import argparse
import os
import sys
from pathlib import Path

HELP = "compile the CPU attention op into a directory that BATCHINFER_PREBUILT_KERNELS_DIR can name"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="where to build (created if missing)")


def run(args: argparse.Namespace) -> int:
    # The build goes through the normal cache path with the directory as its root, so the
    # layout written here is exactly the one the loader looks up.
    os.environ["BATCHINFER_CACHE_DIR"] = str(args.dir)
    os.environ.pop("BATCHINFER_PREBUILT_KERNELS_DIR", None)
    from kernels.cpu.build import KernelBuildError, load_ops

    try:
        print(load_ops())
    except KernelBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
