"""Running one system's runner process on a job, and the batch CLIs on one JSONL file."""

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ValidationError

from peers.jobs import SystemRun
from worker.logs import get_logger

log = get_logger(__name__)
RUNNERS = Path(__file__).parent / "runners"
RUNNER_FILES = {"ours": "ours_runner.py", "vllm": "vllm_runner.py", "llama.cpp": "llama_cpp_runner.py",
                "transformers": "transformers_runner.py"}


class SystemFailure(BaseModel):
    system: str
    error: str


def child_env(threads: int) -> dict[str, str]:
    """The caller's environment with the thread count of this bench, whatever the shell had."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    # vLLM's CPU settings (its CPU install guide): a KV cache of 4 GiB, OpenMP bound to our cores.
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(os.sched_getaffinity(0))[:threads])))
    return env


def run_system(system: str, python: Path, job: dict, scratch: Path, threads: int,
               timeout_s: float) -> SystemRun | SystemFailure:
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        job_file, result_file, log_file = Path(tmp, "job.json"), Path(tmp, "result.json"), scratch / f"{system}.log"
        job_file.write_text(json.dumps(job))
        cmd = [str(python), str(RUNNERS / RUNNER_FILES[system]), str(job_file), str(result_file)]
        log.info("running", system=system, log=str(log_file))
        try:
            with log_file.open("w", encoding="utf-8") as out:
                subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(threads),
                               timeout=timeout_s, check=True)
            return SystemRun.model_validate_json(result_file.read_text())
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, ValidationError) as exc:
            return _failure(system, exc, log_file)


def _failure(system: str, exc: Exception, log_file: Path) -> SystemFailure:
    """What failed, in a line: the exit status (not the long command) and the log's last lines."""
    what = f"exit status {exc.returncode}" if isinstance(exc, subprocess.CalledProcessError) else str(exc)[:200]
    tail = log_file.read_text(errors="replace").splitlines()[-3:] if log_file.exists() else []
    log.warning("system failed", system=system, error=what, log=str(log_file))
    return SystemFailure(system=system, error=f"{what}; log {log_file}: {' | '.join(tail)}"[:600])


class CliRun(BaseModel):
    system: str
    command: str
    seconds: float | None  # None: it failed
    ok_lines: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str = ""


def run_cli(system: str, cmd: list[str], output: Path, threads: int, log_file: Path, timeout_s: float) -> CliRun:
    """Wall time of a whole batch CLI run, model load included; output lines counted, not trusted."""
    start = time.perf_counter()
    try:
        with log_file.open("w", encoding="utf-8") as out:
            subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(threads),
                           timeout=timeout_s, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return CliRun(system=system, command=" ".join(cmd), seconds=None, error=_failure(system, exc, log_file).error)
    seconds = time.perf_counter() - start
    usages = [((json.loads(line).get("response") or {}).get("body") or {}).get("usage")
              for line in output.read_text().splitlines()]
    usages = [u for u in usages if u]
    return CliRun(system=system, command=" ".join(cmd), seconds=seconds, ok_lines=len(usages),
                  prompt_tokens=sum(u.get("prompt_tokens", 0) for u in usages),
                  output_tokens=sum(u.get("completion_tokens", 0) for u in usages))
