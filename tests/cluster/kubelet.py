"""The kubelet, played by the tests: a Node, pods bound to it (`pods/binding`), each pod's exact
container command, arguments and environment run as a local process on its own loopback address,
the pod status written as a kubelet writes it, and deletion honoured. Everything else (which pods
exist, retries, backoff, podFailurePolicy, suspend, deadlines, GC, TTL) is the real controllers'.

Faults are keyed by (Job name, completion index) and used up one pod at a time:
`crash` (SIGKILL once started), `disrupt` (a DisruptionTarget condition, then killed, as a
preemption does), `hang` (runs nothing; Running until deleted), `unpullable` (ImagePullBackOff
until deleted). `budget[job] = n` binds only n more pods of that Job (the rest stay Pending,
unscheduled); `paused` binds none. `claims[name] = dir` plays a bound PersistentVolumeClaim (the
model, as a user would mount it); `unschedulable[job] = message` plays the scheduler refusing that
Job's pods (PodScheduled=False)."""

import base64
import itertools
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.cluster.api import ApiError, KubeClient

VENV_BIN = Path(sys.executable).parent
NODE = "kubelet-player"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
_addresses = itertools.count(2)


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def node_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                   "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"}},
    }


class ContainerConfigError(RuntimeError):
    """What a kubelet reports as CreateContainerConfigError (a Secret or key that is missing)."""


class PodRun:
    """One pod on this "node": its process, its scratch directory and its loopback address."""

    def __init__(self, kubelet: "KubeletPlayer", pod: dict[str, Any]) -> None:
        self.kubelet, self.pod = kubelet, pod
        self.name = pod["metadata"]["name"]
        self.scratch = kubelet.workdir / self.name
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.ip = f"127.0.0.{2 + next(_addresses) % 250}"
        self.process: subprocess.Popen | None = None
        self.deleted = threading.Event()
        self.finished = threading.Event()  # its terminal status is written
        self.started_at = utc_now()

    # -- the container's view of the file system --------------------------------------------------
    def _mounts(self, container: dict[str, Any]) -> dict[str, str]:
        """mountPath -> local directory, for the emptyDir volumes; the termination message file."""
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        mounts = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                local = self.scratch / mount["name"]
                local.mkdir(parents=True, exist_ok=True)
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if claim not in self.kubelet.claims:
                    raise ContainerConfigError(f'persistentvolumeclaim "{claim}" is not bound')
                local = self.kubelet.claims[claim]
            else:
                raise ContainerConfigError(f"volume {mount['name']}: only emptyDir and claims are played")
            mounts[mount["mountPath"].rstrip("/")] = str(local / mount.get("subPath", ""))
        mounts[container.get("terminationMessagePath", "/dev/termination-log")] = str(self.termination_log)
        return mounts

    @property
    def termination_log(self) -> Path:
        return self.scratch / "termination-log"

    @staticmethod
    def _mapped(value: str, mounts: dict[str, str]) -> str:
        for mount, local in mounts.items():
            if value == mount or value.startswith(mount + "/"):
                return local + value[len(mount):]
        return value

    # -- environment, as the kubelet resolves it ------------------------------------------------
    def _field(self, path: str) -> str:
        meta = self.pod["metadata"]
        if m := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
            return (meta.get(m.group(1)) or {}).get(m.group(2), "")
        simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "metadata.uid": meta.get("uid", ""), "spec.nodeName": NODE, "status.podIP": self.ip,
                  "status.hostIP": "127.0.0.1",
                  "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "")}
        if path not in simple:
            raise ContainerConfigError(f"unsupported fieldRef {path}")
        return simple[path]

    def _source(self, kind: str, name: str, optional: bool) -> dict[str, str]:
        plural = "secrets" if kind == "secret" else "configmaps"
        obj = self.kubelet.kube.get(f"/api/v1/namespaces/{{ns}}/{plural}/{name}")
        if obj is None:
            if optional:
                return {}
            raise ContainerConfigError(f'{kind} "{name}" not found')
        data = obj.get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()} if kind == "secret" else dict(data)

    def environment(self, container: dict[str, Any], mounts: dict[str, str]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            kind, ref = ("secret", source["secretRef"]) if "secretRef" in source else ("configmap",
                                                                                      source["configMapRef"])
            for key, value in self._source(kind, ref["name"], ref.get("optional", False)).items():
                env[source.get("prefix", "") + key] = value
        for var in container.get("env") or []:
            env[var["name"]] = self._value(var, env)
        return {k: self._mapped(v, mounts) for k, v in env.items()}

    def _value(self, var: dict[str, Any], env: dict[str, str]) -> str:
        if "valueFrom" not in var:
            return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)),
                          var.get("value", ""))
        source = var["valueFrom"]
        if "fieldRef" in source:
            return self._field(source["fieldRef"]["fieldPath"])
        kind, ref = ("secret", source["secretKeyRef"]) if "secretKeyRef" in source else ("configmap",
                                                                                       source["configMapKeyRef"])
        values = self._source(kind, ref["name"], ref.get("optional", False))
        if ref["key"] not in values and not ref.get("optional", False):
            raise ContainerConfigError(f'couldn\'t find key {ref["key"]} in {kind} {ref["name"]}')
        return values.get(ref["key"], "")

    # -- the pod's life -------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._live()
        finally:
            self.finished.set()

    def _live(self) -> None:
        container = self.pod["spec"]["containers"][0]
        fault = self.kubelet.take_fault(self.pod)
        try:
            mounts = self._mounts(container)
            env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", **self.environment(container, mounts)}
        except ContainerConfigError as exc:
            self._write_waiting(container, "CreateContainerConfigError", str(exc))
            self.deleted.wait()
            return self._terminate(container, None, "ContainerStatusUnknown")
        if not container.get("command"):
            raise AssertionError(f"pod {self.name}: no command; the image's entrypoint cannot be played")
        argv = [self._mapped(a, mounts) for a in container["command"] + (container.get("args") or [])]
        if fault != "unpullable":
            self._write_running(container)
        if fault == "hang":
            self.deleted.wait()
            return self._terminate(container, 137, "Error")
        if fault == "unpullable":  # what a kubelet reports for an image it cannot pull
            self._write_waiting(container, "ImagePullBackOff", f'Back-off pulling image "{container.get("image")}"')
            self.deleted.wait()
            return self._terminate(container, None, "ContainerStatusUnknown")
        with open(self.scratch / "stdout", "wb") as out, open(self.scratch / "stderr", "wb") as err:
            self.process = subprocess.Popen(argv, env=env, cwd=self.scratch, stdout=out, stderr=err,
                                            stdin=subprocess.DEVNULL)
        if fault == "disrupt":
            self.kubelet.patch_status(self.pod, {"conditions": self._conditions(False) + [
                {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                 "message": "Preempted in order to admit critical pod", "lastTransitionTime": utc_now()}]})
        if fault in ("crash", "disrupt"):
            self.process.send_signal(signal.SIGKILL)
        while self.process.poll() is None and not self.deleted.wait(0.1):
            pass
        if self.process.poll() is None:  # deleted while running: the kubelet stops the container
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait()
        code = 128 - code if code < 0 else code  # a signal, as the kubelet reports it
        self._terminate(container, code, "Completed" if code == 0 else "Error")

    def _conditions(self, ready: bool) -> list[dict[str, Any]]:
        now, value = utc_now(), "True" if ready else "False"
        return [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": value, "lastTransitionTime": now},
                {"type": "Ready", "status": value, "lastTransitionTime": now}]

    def _base_status(self, container: dict[str, Any], state: dict[str, Any], phase: str,
                     ready: bool, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "phase": phase, "hostIP": "127.0.0.1", "podIP": self.ip, "podIPs": [{"ip": self.ip}],
            "startTime": self.started_at, "conditions": conditions or self._conditions(ready),
            "containerStatuses": [{"name": container["name"], "image": container.get("image", ""),
                                   "imageID": "", "containerID": f"local://{self.name}", "restartCount": 0,
                                   "ready": ready, "started": phase == "Running", "state": state}],
        }

    def _write_waiting(self, container: dict[str, Any], reason: str, message: str) -> None:
        self.kubelet.patch_status(self.pod, self._base_status(
            container, {"waiting": {"reason": reason, "message": message}}, "Pending", False))

    def _write_running(self, container: dict[str, Any]) -> None:
        self.kubelet.patch_status(self.pod, self._base_status(
            container, {"running": {"startedAt": utc_now()}}, "Running", True))

    def _terminate(self, container: dict[str, Any], code: int | None, reason: str) -> None:
        message = self.termination_log.read_text()[-4096:] if self.termination_log.exists() else ""
        current = self.kubelet.kube.get(f"/api/v1/namespaces/{{ns}}/pods/{self.name}") or self.pod
        kept = [c for c in current.get("status", {}).get("conditions") or [] if c["type"] == "DisruptionTarget"]
        terminated = {"exitCode": 137 if code is None else code, "reason": reason, "message": message,
                      "startedAt": self.started_at, "finishedAt": utc_now(), "containerID": f"local://{self.name}"}
        phase = "Succeeded" if code == 0 else "Failed"
        self.kubelet.patch_status(self.pod, self._base_status(
            container, {"terminated": terminated}, phase, False, self._conditions(False) + kept))


class KubeletPlayer:
    """`with KubeletPlayer(kube, workdir) as kubelet:` plays the kubelet for kube's namespace."""

    def __init__(self, kube: KubeClient, workdir: Path) -> None:
        self.kube, self.workdir = kube, workdir
        self.faults: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
        self.budget: dict[str, int] = {}
        self.claims: dict[str, Path] = {}  # PersistentVolumeClaim name -> the directory it binds
        self.unschedulable: dict[str, str] = {}  # Job name -> what the scheduler says of its pods
        self.paused = threading.Event()
        self.runs: dict[str, PodRun] = {}
        self.started: Counter[tuple[str, int]] = Counter()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop_thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "KubeletPlayer":
        self._loop_thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._loop_thread.join(30)
        for run in self.runs.values():
            run.deleted.set()
        for thread in self._threads:
            thread.join(30)

    def add_fault(self, job: str, index: int, *faults: str) -> None:
        self.faults[(job, index)].extend(faults)

    def take_fault(self, pod: dict[str, Any]) -> str | None:
        queue = self.faults.get(_job_index(pod))
        return queue.pop(0) if queue else None

    def patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        try:
            self.kube.patch(f"/api/v1/namespaces/{{ns}}/pods/{pod['metadata']['name']}/status", {"status": status})
        except ApiError as exc:
            if exc.status != 404:  # gone already: nothing to report to
                raise

    def pod_stderr(self) -> str:
        return "\n".join(f"--- {p.parent.name}\n" + p.read_text(errors="replace")[-2000:]
                         for p in sorted(self.workdir.glob("*/stderr")))

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                for pod in self.kube.items("/api/v1/namespaces/{ns}/pods"):
                    self._sync(pod)
            except BaseException as exc:  # surfaced by the fixture, never swallowed
                self.errors.append(exc)
                time.sleep(0.5)

    def _sync(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            return self._confirm_deletion(pod)
        if name in self.runs or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        if pod["spec"].get("nodeName") not in (None, NODE) or self.paused.is_set() or not _of_a_job(pod):
            return
        job = _job_index(pod)[0]
        if job in self.unschedulable:  # the scheduler's part: PodScheduled=False, never bound
            return self._write_unschedulable(pod, self.unschedulable[job])
        if job in self.budget:
            if self.budget[job] <= 0:
                return
            self.budget[job] -= 1
        if not pod["spec"].get("nodeName"):
            self.kube.create(f"/api/v1/namespaces/{{ns}}/pods/{name}/binding", {
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}})
        run = self.runs[name] = PodRun(self, pod)
        self.started[_job_index(pod)] += 1
        thread = threading.Thread(target=self._run, args=(run,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _write_unschedulable(self, pod: dict[str, Any], message: str) -> None:
        conditions = pod.get("status", {}).get("conditions") or []
        if not any(c["type"] == "PodScheduled" and c.get("message") == message for c in conditions):
            self.patch_status(pod, {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                 "lastTransitionTime": utc_now()}]})

    def _run(self, run: PodRun) -> None:
        try:
            run.run()
        except BaseException as exc:
            self.errors.append(exc)

    def _confirm_deletion(self, pod: dict[str, Any]) -> None:
        """What a kubelet does on deletion: stop the container, report it, remove the pod."""
        run = self.runs.get(pod["metadata"]["name"])
        if run is not None:
            run.deleted.set()
            if not run.finished.is_set():
                return  # still stopping: confirmed on a later pass, after its terminal status
        self.kube.delete(f"/api/v1/namespaces/{{ns}}/pods/{pod['metadata']['name']}", grace_seconds=0)


def _of_a_job(pod: dict[str, Any]) -> bool:
    """Only Job pods are played (the operator's own Deployment pod needs in-cluster credentials)."""
    return any(o.get("kind") == "Job" for o in pod["metadata"].get("ownerReferences") or [])


def _job_index(pod: dict[str, Any]) -> tuple[str, int]:
    labels = pod["metadata"].get("labels") or {}
    return labels.get("job-name", ""), int(labels.get(INDEX_KEY, 0))
