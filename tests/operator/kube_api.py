"""kmock's Kubernetes API emulator on 127.0.0.1, served from its own thread and event loop,
plus the few things a real API server does that kmock leaves to us (uid, creationTimestamp)."""

import asyncio
import itertools
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import requests

RESOURCES = {
    "batchinfer.io/v1alpha1/batchinferences": dict(
        kind="BatchInference", singular="batchinference", shortnames={"bi"}, subresources={"status"}
    ),
    "batch/v1/jobs": dict(kind="Job", singular="job", subresources={"status"}),
    "v1/pods": dict(kind="Pod", singular="pod", subresources={"status"}),
    "v1/events": dict(kind="Event", singular="event"),
    "v1/secrets": dict(kind="Secret", singular="secret"),
    # kopf's backbone: it waits for both before it starts watching anything.
    "v1/namespaces": dict(kind="Namespace", singular="namespace", namespaced=False),
    "apiextensions.k8s.io/v1/customresourcedefinitions": dict(
        kind="CustomResourceDefinition", singular="customresourcedefinition", namespaced=False
    ),
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus what every API server does and kmock does not: a fresh
    resourceVersion on every write (kopf relies on it to tell its own patches apart),
    names from generateName (kopf's Events), uid and creationTimestamp on creation.

    kmock scans its whole request history on every request (a call took ~0.5 s after a few
    thousand), so it keeps only the last HISTORY; the tests read `journal`, every request."""

    _versions = itertools.count(1)
    HISTORY = 100  # far more than are ever in flight at once

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.journal: list[kmock.Request] = []

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is not None and isinstance(request.data, dict | list):
            self._stamp(request)
        self.journal.append(request)
        del self._requests[:-self.HISTORY]
        return await super()._handle(request)

    def _stamp(self, request: kmock.Request) -> None:
        version = str(next(self._versions))
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", utc_now())
            meta["resourceVersion"] = version
        elif request.action == kmock.action.UPDATE:
            if isinstance(request.data, dict):
                request.data.setdefault("metadata", {})["resourceVersion"] = version
            else:
                request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})


class KubeAPI:
    """Start with `with KubeAPI() as api:`; `api.url` is the API server, `api.kubeconfig(dir)`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.http = requests.Session()

    def __enter__(self) -> "KubeAPI":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _start(self) -> None:
        self.emulator = Emulator()
        await self.emulator.__aenter__()
        self.server = kmock.Server(self.emulator)
        await self.server.__aenter__()
        for key, info in RESOURCES.items():
            self.emulator.resources[key] = kmock.ResourceInfo(**{"namespaced": True, "verbs": VERBS, **info})
        self.url = str(self.server.url).rstrip("/")

    async def _stop(self) -> None:
        await self.server.__aexit__(None, None, None)
        await self.emulator.__aexit__(None, None, None)

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
            f"clusters: [{{name: kmock, cluster: {{server: '{self.url}'}}}}]\n"
            "users: [{name: test, user: {token: not-a-secret}}]\n"
            "contexts: [{name: kmock, context: {cluster: kmock, user: test}}]\n"
        )
        return path

    # -- plain HTTP, as kubectl would do it -------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, patch: bool = False) -> Any:
        headers = {"Content-Type": "application/merge-patch+json"} if patch else {}
        response = self.http.request(method, self.url + path, json=body, headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def items(self, path: str) -> list[dict[str, Any]]:
        return list(self.request("GET", path).get("items") or [])

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.http.get(self.url + path, timeout=10)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def create(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("metadata", {}).setdefault("generation", 1)
        return self.request("POST", collection, obj)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, body, patch=True)

    def creations(self, resource: str) -> list[dict[str, Any]]:
        """Bodies of every CREATE request the emulator served for a resource ("batch/v1/jobs")."""
        wanted = kmock.resource(resource)
        return [r.data for r in self.emulator.journal
                if r.action == kmock.action.CREATE and r.resource is not None and wanted.check(r.resource)]

    def operator_calls(self) -> set[tuple[str, str, str]]:
        """(verb, apiGroup, resource[/subresource]) of every API call not made by the test itself."""
        verbs = {"list": "list", "watch": "watch", "fetch": "get", "create": "create", "delete": "delete"}
        calls = set()
        for request in self.emulator.journal:
            if "python-requests" in request.headers.get("User-Agent", "") or request.action is None:
                continue
            if request.resource is None or not request.resource.plural:
                continue  # discovery
            action = str(request.action.value).lower()
            verb = verbs.get(action) or ("patch" if str(request.method.value).upper() == "PATCH" else "update")
            plural = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
            calls.add((verb, request.resource.group or "", plural))
        return calls
