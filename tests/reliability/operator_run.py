"""Small runs for the operator's fault tests: tiny inputs on a local HTTP server, staging on
moto's S3, the bundled tiny model on a claim. The operator is what is under test, so the inputs
are cheap: a shard without lines never loads the model."""

import json
from pathlib import Path
from typing import Any

from tests.cluster.harness import Cluster
from tests.reliability.hostile import req

ENGINE = {"numGpuBlocksOverride": 64, "blockSize": 16, "maxModelLen": 128, "maxNumSeqs": 2,
          "enablePrefixCaching": False}
BAD_LINE = b"{x"  # one error line (invalid_json); short, so it never moves the others' shard


def served_line(cid: str) -> bytes:
    return req(cid, {"max_tokens": 2})


def put_input(http_server: Any, name: str, lines: list[bytes]) -> None:
    http_server.store.files[f"/{name}.in.jsonl"] = b"\n".join(lines) + b"\n"


def run_spec(cluster: Cluster, http_server: Any, s3_server: Any, model: Path, name: str, shards: int,
             per_shard: int = 0) -> dict:
    return dict(
        input={"url": http_server.url(f"{name}.in.jsonl")}, output={"url": http_server.url(f"{name}.out.jsonl")},
        staging={"url": s3_server.url("staging")}, credentials={"secretName": "staging-s3"}, shards=shards,
        parallelism=shards, engine=ENGINE, retries={"perShard": per_shard}, **cluster.model_claim(model),
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


def job_succeeded(cluster: Cluster, name: str) -> int:
    return int(((cluster.job(name) or {}).get("status") or {}).get("succeeded") or 0)
