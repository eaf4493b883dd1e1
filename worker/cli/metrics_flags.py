"""The metrics flags of run-batch, run-shard and gather: a flag, else the pod's environment."""

import argparse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pydantic import ValidationError

from worker.batch.errors import BatchRunError
from worker.contract import ENV_METRICS_ADDRESS, ENV_METRICS_PORT, FLAG_METRICS_PORT, METRICS_PATH
from worker.metrics import WorkerMetrics
from worker.metrics_server import MetricsOptions, serving


def add_metrics_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument(FLAG_METRICS_PORT, type=int,
                        help=f"serve Prometheus metrics on {METRICS_PATH} at this port, 0 for none "
                             f"(default: ${ENV_METRICS_PORT}, else {default_port}); "
                             f"the address is ${ENV_METRICS_ADDRESS}, else all")
    parser.add_argument("--metrics-linger-seconds", type=float, default=0.0,
                        help="after the run, keep serving until one scrape has seen the final figures, "
                             "at most this long (default 0)")


def metrics_options(args: argparse.Namespace, environ: Mapping[str, str], default_port: int) -> MetricsOptions:
    port = args.metrics_port if args.metrics_port is not None else environ.get(ENV_METRICS_PORT, default_port)
    try:
        return MetricsOptions(port=port, address=environ.get(ENV_METRICS_ADDRESS) or "0.0.0.0",
                              linger_s=args.metrics_linger_seconds)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BatchRunError(f"invalid arguments: metrics {err['loc'][0]} ({FLAG_METRICS_PORT} or "
                            f"${ENV_METRICS_PORT}): {err['msg']}") from None


@contextmanager
def served_metrics(args: argparse.Namespace, environ: Mapping[str, str], default_port: int) -> Iterator[WorkerMetrics]:
    """A run's metrics, served as the flags and the environment say for the block's duration."""
    metrics = WorkerMetrics()
    with serving(metrics.registry, metrics_options(args, environ, default_port)):
        yield metrics
