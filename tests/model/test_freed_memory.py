"""A worker keeps the memory its tensors free: the next step's activations of the same size take
no new pages (each fresh page is a fault, 3-6 us in a VM; a prefill step made ~220k of them)."""

import os
import subprocess
import sys

# One 64 MiB activation, freed and made again, as every decoder layer of a prefill step does.
PROGRAM = """
import resource
from worker.platform import paddle
x = paddle.ones([16 * 1024 * 1024], dtype="float32")  # 64 MiB: above glibc's 32 MiB mmap ceiling
del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
y = paddle.ones([16 * 1024 * 1024], dtype="float32")
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=clean | env, capture_output=True, text=True,
                         timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_a_freed_activation_is_reused_without_new_pages() -> None:
    pages = 64 * 1024 * 1024 // 4096
    assert page_faults() < pages // 20  # reused: a handful of faults, not one per page
    # What it replaces, and what a user who opts out gets: every page faulted in again.
    assert page_faults(BATCHINFER_KEEP_FREED_MEMORY="0") >= pages * 0.9
    assert page_faults(MALLOC_ARENA_MAX="2") >= pages * 0.9  # the user's own malloc settings win
