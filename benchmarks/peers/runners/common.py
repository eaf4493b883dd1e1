"""What every peer runner shares: read the job, time each workload, write the result.

Runners run inside each peer's own virtualenv, so this file uses the standard library only;
the orchestrator (benchmarks/bench_peers.py) validates what they write with pydantic.
Job: {"model", "gguf", "threads", "max_model_len", "prefix_caching", "workloads": [{"name",
"prompts", "warmup_prompts", "output_len", "shared_prefix_len"}]}.
Result: {"system", "version", "settings", "load_seconds", "peak_rss_mb", "workloads":
[{"name", "seconds", "prompt_tokens", "output_tokens", "token_ids"}]}.
"""

import json
import resource
import sys
import time


def read_job() -> dict:
    with open(sys.argv[1], encoding="utf-8") as f:
        return json.load(f)


def peak_rss_mb() -> float:
    """This process's peak plus its children's largest (vLLM's engine core is a child)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def run_all(job: dict, system: str, version: str, settings: dict, load, generate) -> None:
    """load() -> engine; generate(engine, workload) -> output token ids per prompt, in order.

    Each workload first runs untimed on its own warm-up prompts (first-call costs out; other
    tokens than the timed prompts, so a prefix cache gains nothing from it), then timed.
    """
    start = time.perf_counter()
    engine = load()
    load_seconds = time.perf_counter() - start
    results = []
    for workload in job["workloads"]:
        generate(engine, {**workload, "prompts": workload["warmup_prompts"]})
        start = time.perf_counter()
        token_ids = generate(engine, workload)
        seconds = time.perf_counter() - start
        results.append({
            "name": workload["name"], "seconds": seconds,
            "prompt_tokens": sum(map(len, workload["prompts"])),
            "output_tokens": sum(map(len, token_ids)), "token_ids": token_ids,
        })
    result = {"system": system, "version": version, "settings": settings, "load_seconds": load_seconds,
              "peak_rss_mb": peak_rss_mb(), "workloads": results}
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(result, f)
