"""Fixtures of the end-to-end batch tests: the bundled tiny model and small engine flags."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Small KV cache and context: fast to allocate, still room for every test prompt.
ENGINE_FLAGS = ["--num-gpu-blocks-override", "64", "--block-size", "16", "--max-model-len", "256",
                "--max-num-seqs", "8", "--no-progress"]
FIXED = ["--batch-id", "test-batch", "--created", "1761203881"]
WORKER = [str(Path(sys.executable).parent / "worker")]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from worker.cli import main

    out = tmp_path_factory.mktemp("tiny") / "model"
    assert main(["make-tiny-model", str(out)]) == 0
    return out


def worker_cli(*args: str) -> int:
    """Run `worker ...` in this process (paddle is imported once for the whole session)."""
    from worker.cli import main

    return main([str(a) for a in args])


def worker_process(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([*WORKER, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def request(cid: str, content: str, chat: bool = True, **body) -> str:
    if chat:
        payload = {"messages": [{"role": "user", "content": content}]} | body
        url = "/v1/chat/completions"
    else:
        payload, url = {"prompt": content} | body, "/v1/completions"
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": payload})
