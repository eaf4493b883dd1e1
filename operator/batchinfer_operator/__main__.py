"""`batchinfer-operator` / `python -m batchinfer_operator`: kopf with our settings."""

import sys

import kopf

from batchinfer_operator.settings import SettingsError, settings_from_env


def main() -> int:
    try:
        settings = settings_from_env()
    except SettingsError as exc:
        sys.stderr.write(f"batchinfer-operator: {exc}\n")
        return 2
    import batchinfer_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=False)
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
