"""The test plays Kubernetes' Job controller (and kubelet): for every pod a Job would create it
runs the pod template's exact command and environment as a local process, with
JOB_COMPLETION_INDEX set, then writes the pod's and the Job's status as Kubernetes would,
honouring the Job's podFailurePolicy Ignore rules for disrupted pods."""

import base64
import os
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.operator.kube_api import KubeAPI, utc_now

VENV_BIN = str(Path(sys.executable).parent)
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
# The one substitution: a local process cannot write the pod's /dev/termination-log.
TERMINATION_LOG_ENV = "BATCHINFER_TERMINATION_LOG"


@dataclass
class JobState:
    uid: str | None = None
    completed: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)
    failures: dict[int, int] = field(default_factory=dict)
    pods_failed: int = 0
    started: str | None = None
    held: bool = False


def _ranges(indexes: set[int]) -> str:
    out: list[str] = []
    for i in sorted(indexes):
        if out and out[-1].split("-")[-1] == str(i - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)


class JobController:
    """`kill_first[(job_name, index)] = n` kills the first n attempts of that index (SIGKILL).
    `disrupt_first[(job_name, index)] = n` preempts them instead: DisruptionTarget, then killed.
    `pod_budget[job_name] = n` lets n more pods of that Job start; at 0 it waits (unscheduled)."""

    def __init__(self, api: KubeAPI, namespace: str, workdir: Path) -> None:
        self.api, self.namespace, self.workdir = api, namespace, workdir
        self.kill_first: dict[tuple[str, int], int] = {}
        self.disrupt_first: dict[tuple[str, int], int] = {}
        self.pod_budget: dict[str, int] = {}
        self.states: dict[str, JobState] = {}
        self.paused = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[BaseException] = []

    def __enter__(self) -> "JobController":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(180)

    def _loop(self) -> None:
        while not self.stop.wait(0.05):
            if self.paused.is_set():
                continue
            try:
                for job in self.api.items(f"/apis/batch/v1/namespaces/{self.namespace}/jobs"):
                    self._sync(job)
            except BaseException as exc:  # surfaced by the test, never swallowed
                self.errors.append(exc)
                return

    # -- one Job ------------------------------------------------------------------------------
    def _sync(self, job: dict[str, Any]) -> None:
        name, spec = job["metadata"]["name"], job["spec"]
        uid = job["metadata"].get("uid")
        state = self.states.get(name)
        if state is None or state.uid != uid:  # a Job deleted and created again starts afresh
            state = self.states[name] = JobState(uid=uid)
        if spec.get("suspend") or self._finished(job):
            return
        state.started = state.started or utc_now()
        indexed = spec.get("completionMode") == "Indexed"
        limit = spec.get("backoffLimitPerIndex", 0) if indexed else spec.get("backoffLimit", 6)
        for index in range(spec.get("completions", 1)):
            if index in state.completed or index in state.failed_indexes:
                continue
            if self.pod_budget.get(name, 1) <= 0:
                if not state.held:  # once: every write is a Job event for the operator
                    state.held = True
                    self._write_job_status(job, state, active=0)
                return
            state.held = False
            if name in self.pod_budget:
                self.pod_budget[name] -= 1
            self._write_job_status(job, state, active=1)
            pod_status = self._run_pod(job, index if indexed else None)
            if pod_status["phase"] == "Succeeded":
                state.completed.add(index)
                continue
            if _ignored(spec, pod_status):
                return  # podFailurePolicy Ignore: replaced on the next pass, no retry used up
            state.pods_failed += 1
            state.failures[index] = state.failures.get(index, 0) + 1
            if state.failures[index] > limit:
                state.failed_indexes.add(index)
                if len(state.failed_indexes) > spec.get("maxFailedIndexes", 0) or not indexed:
                    break
            return  # a replacement pod is created on the next pass, as the controller would
        self._write_job_status(job, state, active=0, final=True)

    @staticmethod
    def _finished(job: dict[str, Any]) -> bool:
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in job.get("status", {}).get("conditions") or []
        )

    def _write_job_status(self, job: dict[str, Any], state: JobState, active: int, final: bool = False) -> None:
        spec = job["spec"]
        status: dict[str, Any] = {
            "startTime": state.started, "active": active,
            "succeeded": len(state.completed), "failed": state.pods_failed,
        }
        if spec.get("completionMode") == "Indexed":
            status["completedIndexes"] = _ranges(state.completed)
            status["failedIndexes"] = _ranges(state.failed_indexes)
        if final:
            now = utc_now()
            if state.failed_indexes:
                reason = "FailedIndexes" if spec.get("completionMode") == "Indexed" else "BackoffLimitExceeded"
                status["conditions"] = [
                    {"type": "FailureTarget", "status": "True", "reason": reason, "lastTransitionTime": now},
                    {"type": "Failed", "status": "True", "reason": reason,
                     "message": "Job has failed indexes" if reason == "FailedIndexes" else
                     "Job has reached the specified backoff limit", "lastTransitionTime": now},
                ]
            else:
                status["completionTime"] = now
                status["conditions"] = [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                     "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                     "lastTransitionTime": now},
                ]
        self.api.patch(f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{job['metadata']['name']}/status",
                       {"status": status})

    # -- one pod ------------------------------------------------------------------------------
    def _secret_env(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            ref = source.get("secretRef", {}).get("name")
            secret = self.api.get(f"/api/v1/namespaces/{self.namespace}/secrets/{ref}") or {}
            env.update({k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()})
        return env

    def _run_pod(self, job: dict[str, Any], index: int | None) -> dict[str, Any]:
        template = job["spec"]["template"]
        container = template["spec"]["containers"][0]
        job_name = job["metadata"]["name"]
        pod_name = f"{job_name}-{index if index is not None else 0}-{uuid.uuid4().hex[:5]}"
        labels = dict(template["metadata"].get("labels") or {}, **{"job-name": job_name,
                      "batch.kubernetes.io/controller-uid": job["metadata"].get("uid", "")})
        annotations = {}
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": self.namespace, "labels": labels,
                         "annotations": annotations},
            "spec": template["spec"],
        }
        self.api.create(f"/api/v1/namespaces/{self.namespace}/pods", pod)
        pod_path = f"/api/v1/namespaces/{self.namespace}/pods/{pod_name}/status"
        self.api.patch(pod_path, {"status": {"phase": "Running", "startTime": utc_now()}})
        key = (job_name, index if index is not None else 0)
        disrupted = self.disrupt_first.get(key, 0) > 0
        if disrupted:
            self.disrupt_first[key] -= 1
        exit_code, message = self._execute(container, index, job_name, pod_name, kill=disrupted)
        terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                      "message": message, "finishedAt": utc_now()}
        status: dict[str, Any] = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": container["name"], "state": {"terminated": terminated}}],
        }
        if disrupted:  # what the scheduler writes before the kubelet kills a preempted pod
            status["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                                     "message": "Preempted in order to admit critical pod",
                                     "lastTransitionTime": utc_now()}]
        self.api.patch(pod_path, {"status": status})
        return status

    def _execute(self, container: dict[str, Any], index: int | None, job_name: str, pod_name: str,
                 kill: bool = False) -> tuple[int, str]:
        scratch = self.workdir / pod_name
        scratch.mkdir(parents=True)
        pod_env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
        # The pod's /tmp is its own emptyDir: give each local pod its own. Only the pod's own
        # values are mapped: this checkout (and so PATH) may itself live under /tmp.
        pod_env = {k: _in_scratch(v, scratch) for k, v in pod_env.items()}
        env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", **self._secret_env(container), **pod_env}
        log_path = scratch / "termination-log"
        env[TERMINATION_LOG_ENV] = str(log_path)
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = str(index)
        key = (job_name, index if index is not None else 0)
        process = subprocess.Popen(container["command"], env=env, cwd=scratch,
                                   stdout=open(scratch / "stdout", "wb"), stderr=open(scratch / "stderr", "wb"))
        if not kill and self.kill_first.get(key, 0) > 0:
            self.kill_first[key] -= 1
            kill = True
        if kill:
            process.send_signal(signal.SIGKILL)
        exit_code = process.wait(timeout=300)
        exit_code = 128 - exit_code if exit_code < 0 else exit_code  # as the kubelet reports signals
        message = log_path.read_text()[-4096:] if log_path.exists() else ""
        return exit_code, message

    def pod_stderr(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*/stderr")))


def _in_scratch(value: str, scratch: Path) -> str:
    return str(scratch) + value[len("/tmp"):] if value == "/tmp" or value.startswith("/tmp/") else value


def _ignored(job_spec: dict[str, Any], pod_status: dict[str, Any]) -> bool:
    """True when an Ignore rule of the Job's podFailurePolicy matches one of the pod's conditions:
    the Job controller then neither counts the failure nor uses up a retry."""
    conditions = {(c["type"], c["status"]) for c in pod_status.get("conditions") or []}
    return any(
        rule.get("action") == "Ignore" and any(
            (p["type"], p.get("status", "True")) in conditions for p in rule.get("onPodConditions") or []
        )
        for rule in (job_spec.get("podFailurePolicy") or {}).get("rules") or []
    )
