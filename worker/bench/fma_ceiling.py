"""The fp32 arithmetic ceiling of this machine, measured (worker/bench/fma_ceiling.c).

Every core issues fused multiply-adds on register-resident chains and nothing else, so no
matmul, no model step and no other engine can run faster than this on the same cores. A target
above it is beyond the machine, shown by a measurement in the same run rather than by a
datasheet figure (the clock a shared VM gives is not the one on the datasheet).
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from pydantic import BaseModel

from kernels.cpu.build import cache_root, cpu_flags

SOURCE = Path(__file__).with_name("fma_ceiling.c")
CFLAGS = ["-O2", "-shared", "-fPIC", "-pthread"]


class FmaCeilingUnavailable(RuntimeError):
    """No C compiler, or a CPU without the vector FMA instructions the probe issues."""


class FmaCeiling(BaseModel):
    threads: int
    vector_bits: int
    gflops: float  # best of the repeats


def _library() -> ctypes.CDLL:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise FmaCeilingUnavailable("no C compiler (cc or gcc) to build the FMA ceiling probe")
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join([compiler, *CFLAGS]).encode()).hexdigest()[:16]
    path = cache_root() / "fma_ceiling" / f"fma_ceiling_{key}.so"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            subprocess.run([compiler, *CFLAGS, str(SOURCE), "-o", str(partial)], check=True, capture_output=True)
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode(errors="replace")
            raise FmaCeilingUnavailable(f"building {SOURCE.name} failed: {detail}") from exc
        partial.replace(path)  # atomic: a concurrent bench never loads a half-written file
    lib = ctypes.CDLL(str(path))
    lib.fma_ceiling_flops.restype = ctypes.c_double
    lib.fma_ceiling_flops.argtypes = [ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    return lib


def vector_bits() -> int:
    flags = cpu_flags()
    if platform.machine() != "x86_64" or not {"avx2", "fma"} <= flags:
        raise FmaCeilingUnavailable(f"the probe issues x86 AVX2/AVX-512 FMAs; this is {platform.machine()} "
                                    f"without them")
    return 512 if "avx512f" in flags else 256


def measure_fma_ceiling(threads: int | None = None, iterations: int = 50_000_000, repeats: int = 5) -> FmaCeiling:
    """GFLOP/s of `threads` threads (default: one per core this process may use), best of
    `repeats` calls of ~0.3 s each on this machine."""
    bits = vector_bits()
    threads = threads or len(os.sched_getaffinity(0))
    lib, sink, best = _library(), ctypes.c_float(), 0.0
    for _ in range(repeats + 1):  # the first call warms the clocks and pages
        start = time.perf_counter()
        flops = lib.fma_ceiling_flops(iterations, threads, int(bits == 512), ctypes.byref(sink))
        best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return FmaCeiling(threads=threads, vector_bits=bits, gflops=best)
