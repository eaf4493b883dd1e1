"""`batchinfer-operator` / `python -m batchinfer_operator`: kopf with our settings."""

import os
import sys

import kopf
import structlog

from batchinfer_operator.settings import SettingsError, settings_from_env


def configure_logging() -> bool:
    """JSON lines for both kopf and our structlog loggers unless LOG_FORMAT=console."""
    as_json = os.environ.get("LOG_FORMAT", "json") != "console"
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    kopf.configure(verbose=False, log_format=kopf.LogFormat.JSON if as_json else kopf.LogFormat.PLAIN)
    return as_json


def main() -> int:
    try:
        settings = settings_from_env()
    except SettingsError as exc:
        sys.stderr.write(f"batchinfer-operator: {exc}\n")
        return 2
    import batchinfer_operator.handlers  # noqa: F401  (registers the handlers)

    configure_logging()
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
