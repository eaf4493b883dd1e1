"""The operator as a real process (`kopf run`, as its Deployment runs it) that a test can kill or
stop at any moment, and small runs for it: tiny inputs on a local HTTP server, staging on
moto's S3, the bundled tiny model. The operator is what is under test, so the inputs are
cheap: a shard without lines never loads the model."""

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.operator.conftest import CR_PATH, NAMESPACE, wait_for
from tests.operator.job_controller import VENV_BIN
from tests.operator.kube_api import KubeAPI
from tests.operator.test_operator_integration import status_of
from tests.reliability.hostile import req

ENGINE = {"numGpuBlocksOverride": 64, "blockSize": 16, "maxModelLen": 128, "maxNumSeqs": 2,
          "enablePrefixCaching": False}

def _kernel_cache() -> list[dict[str, str]]:
    """The pods share this process's build of the CPU attention op: a pod's own cache (its
    /tmp emptyDir) would compile it again, ~13 s a pod here. Under /tmp it cannot be shared."""
    root = os.environ.get("BATCHINFER_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "batchinfer")
    return [] if root == "/tmp" or root.startswith("/tmp/") else [{"name": "BATCHINFER_CACHE_DIR", "value": root}]


WORKER = {"env": [{"name": "BATCHINFER_RETRY_BASE_SECONDS", "value": "0.01"}, *_kernel_cache()]}
BAD_LINE = b"{x"  # one error line (invalid_json); short, so it never moves the others' shard


class OperatorProcess:
    """`kopf run -m batchinfer_operator` in its own process; `stop(signal.SIGKILL)` kills it."""

    def __init__(self, logdir: Path) -> None:
        self.logdir, self.starts = logdir, 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OperatorProcess":
        assert self.proc is None, "already running"
        self.starts += 1
        env = {**os.environ, "BATCHINFER_METRICS_PORT": "0"}  # KUBECONFIG: the kube fixture's
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [f"{VENV_BIN}/kopf", "run", "-m", "batchinfer_operator", "--standalone", "-A", "--verbose"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        return self

    @property
    def log_path(self) -> Path:
        return self.logdir / f"operator-{self.starts}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None, "not running"
        self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.proc = None
        return code

    def __enter__(self) -> "OperatorProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.stop(signal.SIGKILL)


def served_line(cid: str) -> bytes:
    return req(cid, {"max_tokens": 2})


def put_input(http_server: Any, name: str, lines: list[bytes]) -> None:
    http_server.store.files[f"/{name}.in.jsonl"] = b"\n".join(lines) + b"\n"


def run_spec(http_server: Any, s3_server: Any, model: Path, name: str, shards: int, per_shard: int = 0) -> dict:
    return dict(
        model=str(model), input={"url": http_server.url(f"{name}.in.jsonl")},
        output={"url": http_server.url(f"{name}.out.jsonl")}, staging={"url": s3_server.url("staging")},
        credentials={"secretName": "staging-s3"}, shards=shards, parallelism=shards, engine=ENGINE,
        retries={"perShard": per_shard}, worker=WORKER,
    )


def output_of(http_server: Any, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in http_server.store.files[f"/{name}.out.jsonl"].splitlines()]


def check_output(http_server: Any, name: str, served: list[str], errors: int) -> None:
    """One output line per input line: the served ones answered, in input order."""
    out = output_of(http_server, name)
    assert len(out) == len(served) + errors, out
    answered = [o["custom_id"] for o in out if o.get("error") is None]
    assert answered == served, out
    assert sum(o.get("error") is not None for o in out) == errors, out


def jobs_created(kube: KubeAPI) -> list[str]:
    return sorted(b["metadata"]["name"] for b in kube.creations("batch/v1/jobs"))


def status_writes(kube: KubeAPI, name: str) -> list[dict[str, Any]]:
    """Every status the operator wrote to the CR `name`, in order (none missed, unlike polling)."""
    return [r.data["status"] for r in kube.emulator.journal
            if r.subresource == "status" and r.name == name and r.resource is not None
            and r.resource.plural == "batchinferences" and isinstance(r.data, dict) and "status" in r.data]


def job(kube: KubeAPI, name: str) -> dict[str, Any] | None:
    return kube.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}")


def wait_status(kube: KubeAPI, name: str, what: str, check: Any, timeout: float = 120) -> dict[str, Any]:
    """Wait until check(status) holds for the CR `name`; return that status."""
    wait_for(f"{name}: {what}", lambda: check(status_of(kube, name)), timeout,
             detail=lambda: json.dumps(status_of(kube, name))[:2000])
    return status_of(kube, name)


def cr_path(name: str) -> str:
    return f"{CR_PATH}/{name}"
