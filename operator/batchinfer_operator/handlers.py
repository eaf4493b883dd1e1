"""kopf handlers: thin adapters from kopf's causes to reconcile(); all decisions live elsewhere."""

import asyncio
import logging
from typing import Any

import kopf
import structlog

from batchinfer_operator import kube, metrics
from batchinfer_operator.names import GROUP, LABEL_MANAGED_BY, LABEL_RUN, MANAGED_BY, PLURAL, VERSION
from batchinfer_operator.reconcile import now_iso, reconcile_latest
from batchinfer_operator.settings import OperatorSettings, settings_from_env

log = structlog.get_logger(__name__)

FINALIZER = f"{GROUP}/finalizer"


def _settings(memo: kopf.Memo) -> OperatorSettings:
    return memo["batchinfer_settings"]


COMPONENT = "batchinfer-operator"


def post_event(cr: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Never fails the pass that posts it: the status it announces is already written."""
    try:
        kube.post_event(cr, type_, reason, message, COMPONENT, now_iso())
    except kube.KubeError as exc:
        log.warning("event not posted", reason=reason, error=str(exc))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ours = settings_from_env()
    memo["batchinfer_settings"] = ours
    kube.reset_client()  # re-read the cluster credentials on every start
    # kopf adds this finalizer only for deletion handlers; we have none (ownerReferences clean up).
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Our transitions are posted explicitly; kopf's own log lines (a handler's error) become
    # Events from WARNING up. kopf 1.45 posts nothing from its loggers unless told to.
    settings.posting.loggers = True
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = COMPONENT
    # One replica (the Deployment's strategy is Recreate): no peering objects needed.
    settings.peering.standalone = True
    settings.execution.max_workers = 8
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    metrics.serve(ours.metrics_port)
    log.info("operator configured", worker_image=ours.worker_image, namespaces=list(ours.namespaces))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The pod's service account, else $KUBECONFIG read at each login (not cached at import)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.probe(id="settings")
def settings_probe(memo: kopf.Memo, **_: Any) -> str:
    return _settings(memo).worker_image


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def on_run_changed(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    reconcile_latest(namespace, name, _settings(memo), post_event)


async def _resync_forever(settings: OperatorSettings) -> None:
    """Level-triggered safety net (controller-runtime's SyncPeriod): every live run is re-checked.

    Not a kopf timer: timers make kopf put a finalizer on every CR, which we do not need."""
    while True:
        await asyncio.sleep(settings.resync_seconds)
        try:
            runs = await asyncio.to_thread(kube.list_crs, settings.namespaces)
        except Exception as exc:  # keep resyncing: the next pass may well succeed
            log.warning("resync: listing runs failed", error=str(exc))
            continue
        for cr in runs:
            if (cr.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            meta = cr["metadata"]
            try:  # one run's failure must not stop the others' resync
                await asyncio.to_thread(reconcile_latest, meta["namespace"], meta["name"], settings, post_event)
            except Exception as exc:
                log.warning("resync failed", run=f"{meta['namespace']}/{meta['name']}", error=str(exc))


@kopf.on.startup()
async def start_resync(memo: kopf.Memo, **_: Any) -> None:
    memo["batchinfer_resync"] = asyncio.create_task(_resync_forever(_settings(memo)))


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("batchinfer_resync")
    if task is not None:
        task.cancel()


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def on_run_deleted(namespace: str, name: str, **_: Any) -> None:
    metrics.forget(f"{namespace}/{name}")


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_RUN: kopf.PRESENT})
def on_job_event(body: kopf.Body, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """A Job of ours changed: reconcile its run at once instead of waiting for the timer."""
    run_name = body.get("metadata", {}).get("labels", {}).get(LABEL_RUN)
    reconcile_latest(namespace, run_name, _settings(memo), post_event)
