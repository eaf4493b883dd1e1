"""The Kubernetes API edge: a few JSON calls on plain dicts (no typed models, no user data)."""

import json
import os
import threading
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from batchinfer_operator.names import API_VERSION, GROUP, KIND, PLURAL, VERSION

_lock = threading.Lock()
_client: client.ApiClient | None = None


class KubeError(RuntimeError):
    """A Kubernetes API call failed; says which call and the API's answer."""

    def __init__(self, what: str, status: int | None, body: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:300]}")
        self.status = status


def api_client() -> client.ApiClient:
    """In a pod the service account; elsewhere the kubeconfig (as kopf itself logs in)."""
    global _client
    with _lock:
        if _client is None:
            try:
                config.load_incluster_config()
            except ConfigException:
                # Read KUBECONFIG now: the kubernetes library reads it once, at its import.
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
            _client = client.ApiClient()
        return _client


def reset_client() -> None:
    global _client
    with _lock:
        _client = None


def _call(
    method: str, path: str, body: Any = None, content_type: str = "application/json",
    query: list[tuple[str, str]] | None = None,
) -> Any:
    try:
        response = api_client().call_api(
            path, method, query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"],
            _preload_content=False, _return_http_data_only=True,
        )
    except ApiException as exc:
        raise KubeError(f"{method} {path}", exc.status, str(exc.body or exc.reason)) from None
    return json.loads(response.data or b"null")


def _cr_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def _job_path(namespace: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")


def read_cr(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _call("GET", _cr_path(namespace, name))
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def list_crs(namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """All BatchInferences in the given namespaces, or in every namespace when none are given."""
    paths = [f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}" for ns in namespaces] or [
        f"/apis/{GROUP}/{VERSION}/{PLURAL}"
    ]
    return [item for path in paths for item in (_call("GET", path) or {}).get("items") or []]


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` as a JSON merge patch over `old`: what `new` no longer has is set to null, or the
    server would keep it (a finished shard's live record, an ETA that no longer applies)."""
    patch = dict(new)
    for key, value in old.items():
        if key not in new:
            patch[key] = None
        elif isinstance(value, dict) and isinstance(new[key], dict):
            patch[key] = merge_patch(value, new[key])
    return patch


def patch_cr_status(namespace: str, name: str, status: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """old: the status as stored, so that fields `status` dropped are removed."""
    body = merge_patch(old or {}, status)
    _call("PATCH", _cr_path(namespace, name) + "/status", {"status": body}, "application/merge-patch+json")


def post_event(cr: dict[str, Any], type_: str, reason: str, message: str, component: str, now: str) -> None:
    """A core/v1 Event about the CR, written directly: kopf.event works only inside kopf's own
    per-object handlers (its event queue is a context variable), not in our resync."""
    meta = cr["metadata"]
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta.get("uid")},
        "type": type_, "reason": reason, "message": message[:1000],
        "source": {"component": component}, "reportingComponent": component,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
    _call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)


def read_job(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _call("GET", _job_path(namespace, name))
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def ensure_job(job: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the Job, or return the existing one: 409 means an earlier attempt already did.

    Returns (job, created)."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    try:
        return _call("POST", _job_path(namespace), job), True
    except KubeError as exc:
        if exc.status != 409:
            raise
    existing = read_job(namespace, name)
    if existing is None:
        raise KubeError(f"GET {_job_path(namespace, name)}", 404, "Job vanished right after a 409")
    return existing, False


def set_job_suspend(namespace: str, name: str, suspend: bool) -> None:
    _call("PATCH", _job_path(namespace, name), {"spec": {"suspend": suspend}}, "application/merge-patch+json")


def set_job_ttl(namespace: str, name: str, seconds: int) -> None:
    _call("PATCH", _job_path(namespace, name), {"spec": {"ttlSecondsAfterFinished": seconds}},
          "application/merge-patch+json")


def failed_creates(namespace: str, job_uids: dict[str, str]) -> dict[str, str]:
    """The Job controller's latest FailedCreate Event message for each of these Jobs (name ->
    uid: not an older Job of the same name), i.e. pods the API server refused: a missing
    ServiceAccount or PriorityClass, a quota, an admission webhook."""
    if not job_uids:
        return {}
    query = [("fieldSelector", "involvedObject.kind=Job,reason=FailedCreate")]
    found: dict[str, tuple[str, str]] = {}
    for event in (_call("GET", f"/api/v1/namespaces/{namespace}/events", query=query) or {}).get("items") or []:
        involved = event.get("involvedObject", {})
        name, stamp = involved.get("name"), event.get("lastTimestamp") or event.get("eventTime") or ""
        if job_uids.get(name) == involved.get("uid") and stamp >= found.get(name, ("", ""))[0]:
            found[name] = (stamp, event.get("message") or "")
    return {name: message for name, (_, message) in found.items()}


def list_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    """Callers still filter by labels: the selector is a server-side optimisation only."""
    path = f"/api/v1/namespaces/{namespace}/pods"
    return list((_call("GET", path, query=[("labelSelector", selector)]) or {}).get("items") or [])
