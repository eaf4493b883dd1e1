"""`run-batch`, `run-shard` and `gather` killed with SIGKILL at random points (seeded), then
restarted until they finish: the output is byte-identical to an uninterrupted run, nothing is
published by a killed run, and nothing is lost. The default suite runs a few seeds per
command; `make test-long` runs 24 per command with up to 3 kills each."""

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.batch.conftest import FIXED, WORKER, worker_cli
from tests.reliability.hostile import req

FLAGS = ["--num-gpu-blocks-override", "64", "--block-size", "16", "--max-model-len", "128", "--max-num-seqs", "2",
         "--max-in-flight", "2", "--chunk-lines", "2", "--no-progress", "--no-enable-prefix-caching", *FIXED]
DATA = b"\n".join([req(f"k{i}", {"messages": [{"role": "user", "content": f"Number {i} " + "x " * (i % 5)}],
                                  "max_tokens": 4 + i % 5}) for i in range(15)] + [b"not json"]) + b"\n"
SHORT, LONG = [11, 12, 13], list(range(100, 124))


@pytest.fixture(scope="module")
def batch(tmp_path_factory, tiny_model) -> Path:
    """The input, its uninterrupted output, and shard 0 of 2 already staged."""
    d = tmp_path_factory.mktemp("sigkill")
    (d / "in.jsonl").write_bytes(DATA)
    assert worker_cli("run-batch", "-i", d / "in.jsonl", "-o", d / "want.jsonl", "--model", tiny_model, *FLAGS) == 0
    for i in range(2):
        assert worker_cli(*shard_args(d, d / "staging", tiny_model, i)) == 0
    return d


@pytest.fixture(scope="module")
def gather_seconds(batch, tmp_path_factory) -> float:
    """One uninterrupted `worker gather` process's wall time here (the faster of two): kills are
    drawn within it, so they land mid-run however fast this machine is (a fixed window let most
    miss)."""
    args = gather_args(batch, tmp_path_factory.mktemp("gather-timing") / "out.jsonl")
    times = []
    for _ in range(2):
        start = time.monotonic()
        subprocess.run([*WORKER, *map(str, args)], check=True, capture_output=True, timeout=120)
        times.append(time.monotonic() - start)
    return min(times)


def gather_args(batch: Path, out: Path) -> list:
    return ["gather", "--staging", batch / "staging", "--num-shards", 2, "--output", out]


def shard_args(d: Path, staging: Path, model: Path, index: int) -> list:
    return ["run-shard", "--input", d / "in.jsonl", "--staging", staging, "--shard-index", index, "--num-shards", 2,
            "--model", model, "--termination-message-path", staging / f"term-{index}", *FLAGS]


def _chunks_done(progress: Path, chunks: int) -> int:
    try:
        return len(list(progress.rglob("part-*.json")))
    except FileNotFoundError:  # the run finished and moved its checkpoint aside as we listed it
        return chunks


def kill_at_random_point(args: list, rng: random.Random, progress: Path, chunks: int) -> bool:
    """Start `worker args`, wait until a random number of chunks is done (plus a random
    fraction of the next), SIGKILL it; True when the kill landed before it finished."""
    proc = subprocess.Popen([*WORKER, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wanted, deadline = rng.randrange(chunks), time.monotonic() + 120
    while _chunks_done(progress, chunks) < wanted and proc.poll() is None:
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
    return proc.returncode == -signal.SIGKILL


def _kills(rng: random.Random, long: bool) -> int:
    return rng.randint(1, 3) if long else 1


def check_run_batch(batch: Path, model: Path, tmp: Path, seed: int, long: bool) -> int:
    rng, out = random.Random(seed), tmp / "got.jsonl"
    args = ["run-batch", "-i", batch / "in.jsonl", "-o", out, "--model", model, "--output-tmp-dir", tmp / "t", *FLAGS]
    landed = 0
    for _ in range(_kills(rng, long)):
        landed += kill_at_random_point(args, rng, tmp / "t", 8)
        # published atomically: nothing, or (killed while cleaning up) the whole output
        assert not out.exists() or out.read_bytes() == (batch / "want.jsonl").read_bytes()
    assert worker_cli(*args) == 0
    assert out.read_bytes() == (batch / "want.jsonl").read_bytes()
    return landed


def check_run_shard(batch: Path, model: Path, tmp: Path, seed: int, long: bool) -> int:
    rng, staging = random.Random(seed), tmp / "staging"
    shutil.copytree(batch / "staging" / "shards" / "00000", staging / "shards" / "00000")
    args = shard_args(batch, staging, model, 1)
    landed = sum(kill_at_random_point(args, rng, staging / "shards" / "00001", 4) for _ in range(_kills(rng, long)))
    assert worker_cli(*args) == 0
    assert worker_cli("gather", "--staging", staging, "--num-shards", 2, "--output", tmp / "got.jsonl") == 0
    assert (tmp / "got.jsonl").read_bytes() == (batch / "want.jsonl").read_bytes()
    assert json.loads((staging / "term-1").read_bytes())["requests"] == 8
    return landed


def check_gather(batch: Path, tmp: Path, seed: int, long: bool, seconds: float) -> int:
    rng, out = random.Random(seed), tmp / "got.jsonl"
    args = gather_args(batch, out)
    landed = 0
    for _ in range(_kills(rng, long)):
        proc = subprocess.Popen([*WORKER, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0, seconds))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        landed += proc.returncode == -signal.SIGKILL
        # atomic publish: nothing, or the whole output, never a part
        assert not out.exists() or out.read_bytes() == (batch / "want.jsonl").read_bytes()
    assert worker_cli(*args) == 0
    assert out.read_bytes() == (batch / "want.jsonl").read_bytes()
    return landed


CHECKS = {"run-batch": check_run_batch, "run-shard": check_run_shard}


@pytest.mark.parametrize("command", ["run-batch", "run-shard"])
@pytest.mark.parametrize("seed", SHORT)
def test_killed_then_restarted_gives_identical_output(batch, tiny_model, tmp_path, command, seed):
    CHECKS[command](batch, tiny_model, tmp_path, seed, long=False)


@pytest.mark.parametrize("seed", SHORT)
def test_gather_killed_then_restarted_gives_identical_output(batch, gather_seconds, tmp_path, seed):
    check_gather(batch, tmp_path, seed, long=False, seconds=gather_seconds)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run-batch", "run-shard", "gather"])
def test_long_many_seeds_many_kills(batch, gather_seconds, tiny_model, tmp_path, command):
    landed = 0
    for seed in LONG:
        d = tmp_path / str(seed)
        d.mkdir()
        if command == "gather":
            landed += check_gather(batch, d, seed, long=True, seconds=gather_seconds)
        else:
            landed += CHECKS[command](batch, tiny_model, d, seed, long=True)
    print(f"{command}: {len(LONG)} seeds, {landed} kills landed mid-run, 0 lines lost")
    assert landed >= len(LONG) // 2  # most kills hit a running process
