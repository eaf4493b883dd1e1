"""Load: many BatchInference objects at once, 10 shards each, handled by one operator process
(killed once half-way, and started again). Every run must reach Succeeded with its own counts,
every output line accounted for, and exactly one Job of each kind per run. The default suite
runs 5 objects; `make test-long` runs 50. Cheap on purpose, as the operator is under test: each
input is one line, a request served or an error line, so only shard 0 holds a line start and
loads the model; the other 9 shards lie inside that line and stage empty results."""

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.operator.conftest import CR_PATH, wait_for, worker_has
from tests.operator.job_controller import JobController
from tests.operator.kube_api import KubeAPI
from tests.operator.test_operator_integration import cr, status_of
from tests.reliability.operator_run import BAD_LINE, OperatorProcess, check_output, jobs_created, run_spec, served_line

pytestmark = pytest.mark.skipif(not (worker_has("run-shard") and worker_has("gather")),
                                reason="worker run-shard/gather")
SHARDS = 10


def served(i: int) -> list[str]:
    """Odd runs serve their one line; even ones get an error line."""
    return [f"r{i}"] if i % 2 else []


def run_many(kube: KubeAPI, operator: OperatorProcess, http_server: Any, s3_server: Any, model: Path,
             n: int, timeout: float) -> None:
    names = [f"load{i}" for i in range(n)]
    for i, name in enumerate(names):
        http_server.store.files[f"/{name}.in.jsonl"] = (served_line(f"r{i}") if i % 2 else BAD_LINE) + b"\n"
    operator.start()
    for name in names:
        kube.create(CR_PATH, cr(name, **run_spec(http_server, s3_server, model, name, shards=SHARDS)))

    def finished() -> list[str]:
        return [m for m in names if status_of(kube, m).get("phase") in ("Succeeded", "Failed")]

    wait_for("a first run finished", finished, timeout)
    operator.stop(signal.SIGKILL)
    operator.start()
    wait_for(f"all {n} runs finished", lambda: len(finished()) == n, timeout,
             detail=lambda: f"{len(finished())}/{n} finished; {operator.log()[-3000:]}")
    operator.stop()

    for i, name in enumerate(names):
        status = status_of(kube, name)
        assert status["phase"] == "Succeeded", status
        assert status["shards"] == {"total": SHARDS, "succeeded": SHARDS, "failed": 0, "active": 0}, name
        assert status["requestCounts"] == {"total": 1, "completed": len(served(i)), "failed": 1 - len(served(i)),
                                           "shardsReported": SHARDS}, name
        check_output(http_server, name, served=served(i), errors=1 - len(served(i)))
    assert jobs_created(kube) == sorted(f"{m}-{role}" for m in names for role in ("gather", "shards"))


@pytest.mark.timeout(300)
def test_five_runs_at_once(kube: KubeAPI, controller: JobController, operator: OperatorProcess,
                           http_server: Any, s3_server: Any, tiny_model: Path) -> None:
    run_many(kube, operator, http_server, s3_server, tiny_model, n=5, timeout=240)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fifty_runs_at_once(kube: KubeAPI, controller: JobController, operator: OperatorProcess,
                            http_server: Any, s3_server: Any, tiny_model: Path) -> None:
    run_many(kube, operator, http_server, s3_server, tiny_model, n=50, timeout=1700)
