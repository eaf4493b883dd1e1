"""Load on the real control plane: many BatchInference objects at once, 10 shards each, handled
by one operator process (killed once half-way, and started again) and the real Job controller.
Every run must reach Succeeded with its own counts, every output line accounted for, and
exactly one Job of each kind per run. The default suite
runs 5 objects; `make test-long` runs 50. Cheap on purpose, as the operator is under test: each
input is one line, a request served or an error line, so only shard 0 holds a line start and
loads the model; the other 9 shards lie inside that line and stage empty results."""

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import Cluster
from tests.operator.conftest import worker_has
from tests.reliability.operator_run import BAD_LINE, check_output, run_spec, served_line

pytestmark = pytest.mark.skipif(not (worker_has("run-shard") and worker_has("gather")),
                                reason="worker run-shard/gather")
SHARDS = 10


def served(i: int) -> list[str]:
    """Odd runs serve their one line; even ones get an error line."""
    return [f"r{i}"] if i % 2 else []


def run_many(c: Cluster, http_server: Any, s3_server: Any, model: Path, n: int, timeout: float) -> None:
    names = [f"load{i}" for i in range(n)]
    for i, name in enumerate(names):
        http_server.store.files[f"/{name}.in.jsonl"] = (served_line(f"r{i}") if i % 2 else BAD_LINE) + b"\n"
    c.operator.start()
    for name in names:
        c.create_cr(name, **run_spec(c, http_server, s3_server, model, name, shards=SHARDS))

    def finished() -> list[str]:
        return [m for m in names if c.status(m).get("phase") in ("Succeeded", "Failed")]

    c.wait("a first run finished", finished, timeout)
    c.operator.stop(signal.SIGKILL)
    c.operator.start()
    c.wait(f"all {n} runs finished", lambda: len(finished()) == n, timeout)
    c.operator.stop()

    for i, name in enumerate(names):
        status = c.status(name)
        assert status["phase"] == "Succeeded", status
        assert status["shards"] == {"total": SHARDS, "succeeded": SHARDS, "failed": 0, "active": 0}, name
        assert status["requestCounts"] == {"total": 1, "completed": len(served(i)), "failed": 1 - len(served(i)),
                                           "shardsReported": SHARDS}, name
        check_output(http_server, name, served=served(i), errors=1 - len(served(i)))
    assert c.jobs_created() == sorted(f"{m}-{role}" for m in names for role in ("gather", "shards"))


@pytest.mark.timeout(400)
def test_five_runs_at_once(staged: Cluster, http_server: Any, s3_server: Any, tiny_model: Path) -> None:
    run_many(staged, http_server, s3_server, tiny_model, n=5, timeout=300)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fifty_runs_at_once(staged: Cluster, http_server: Any, s3_server: Any, tiny_model: Path) -> None:
    run_many(staged, http_server, s3_server, tiny_model, n=50, timeout=1700)
