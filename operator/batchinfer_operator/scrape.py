"""Reading the running shard pods' metrics endpoints (pod IP and the named container port; no
credentials involved, no user data): the one HTTP call of the operator that is not the API server.
An unreachable pod is not an error: it is left out and its last record in the status stands."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
import structlog

from batchinfer_operator.observed import shard_index
from batchinfer_operator.pod_template import CONTAINER_NAME
from batchinfer_operator.progress import Scraped, parse_metrics
from worker.contract import METRICS_PATH, METRICS_PORT_NAME

log = structlog.get_logger(__name__)

TIMEOUT = (1.0, 2.0)  # connect, read: a pass must not wait long on a pod that is going away
MAX_PARALLEL = 8


def metrics_url(pod: dict[str, Any]) -> str | None:
    """http://<pod IP>:<metrics port>/metrics of a running pod, or None."""
    ip = pod.get("status", {}).get("podIP")
    if pod.get("status", {}).get("phase") != "Running" or not ip:
        return None
    for container in pod.get("spec", {}).get("containers") or []:
        if container.get("name") != CONTAINER_NAME:
            continue
        for port in container.get("ports") or []:
            if port.get("name") == METRICS_PORT_NAME:
                host = f"[{ip}]" if ":" in ip else ip
                return f"http://{host}:{port['containerPort']}{METRICS_PATH}"
    return None


def _fetch(url: str) -> Scraped | None:
    try:
        response = requests.get(url, timeout=TIMEOUT)
        response.raise_for_status()
        return parse_metrics(response.text)
    except (requests.RequestException, ValueError) as exc:
        log.debug("scrape failed", url=url, error=str(exc))
        return None


def scrape_shards(pods: list[dict[str, Any]]) -> dict[int, Scraped]:
    targets = [(index, url) for pod in pods
               if (index := shard_index(pod)) is not None and (url := metrics_url(pod)) is not None]
    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(targets))) as pool:
        results = pool.map(_fetch, [url for _, url in targets])
    return {index: scraped for (index, _), scraped in zip(targets, results) if scraped is not None}
