"""The machine and its limits, measured in the same run as the workloads they judge."""

import datetime as dt
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pydantic import BaseModel

from worker.bench.fma_ceiling import FmaCeilingUnavailable, measure_fma_ceiling
from worker.logs import get_logger
from worker.platform import paddle

log = get_logger(__name__)


class MachineInfo(BaseModel):
    cpu_model: str
    cores: int
    date: str
    paddle_version: str
    omp_num_threads: str
    mkl_debug_cpu_type: str


class MachineLimits(BaseModel):
    matmul_size: int
    matmul_gflops: float  # fp32 paddle.matmul peak (best of the repeats)
    # Our panel GEMM (kernels/cpu/packed_matmul.cc) at the same size, where the kernels build:
    # on AVX-512 CPUs it passes MKL (AVX2 code on AMD), and the engine runs it for every call.
    panel_gflops: float | None = None
    copy_gbps: float  # STREAM convention: bytes read + written per second, best thread count
    copy_bytes: int
    # Every core issuing register-only FMAs (fma_ceiling.py): what no matmul can pass here.
    # None where the probe cannot run (no compiler, not x86 with AVX2/FMA).
    fma_gflops: float | None = None

    @property
    def peak_gflops(self) -> float:
        """The fastest fp32 matmul this engine can run here: what its FLOP/s are judged against."""
        return max(self.matmul_gflops, self.panel_gflops or 0.0)


def machine_info() -> MachineInfo:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return MachineInfo(
        cpu_model=model, cores=len(os.sched_getaffinity(0)),
        date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        paddle_version=paddle.__version__,
        omp_num_threads=os.environ.get("OMP_NUM_THREADS", "unset"),
        mkl_debug_cpu_type=os.environ.get("MKL_DEBUG_CPU_TYPE", "unset"),
    )


def best_time(fn, repeats: int, warmup: int = 1) -> float:
    """Best wall time of `repeats` calls after `warmup` calls: the machine's capability,
    least disturbed by other processes on a shared host."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak_gflops(size: int, repeats: int) -> float:
    a = paddle.randn([size, size], dtype="float32")
    b = paddle.randn([size, size], dtype="float32")

    def run():
        paddle.matmul(a, b).numpy()  # .numpy() waits for the result

    return 2 * size**3 / best_time(run, repeats) / 1e9


def panel_peak_gflops(size: int, repeats: int) -> float | None:
    """Our packed-panel GEMM at size^3, or None where the CPU kernels do not build."""
    from kernels.cpu.build import KernelBuildError

    try:
        from kernels.cpu.packed import PackedWeight
    except KernelBuildError:
        return None
    a = paddle.randn([size, size], dtype="float32")
    weight = PackedWeight(paddle.randn([size, size], dtype="float32"))
    return 2 * size**3 / best_time(lambda: weight(a).numpy(), repeats) / 1e9


def copy_bandwidth_gbps(num_bytes: int, repeats: int) -> float:
    """Large array copy, one thread and one per core (NumPy releases the GIL); the best."""
    src = np.random.default_rng(0).random(num_bytes // 8)
    dst = np.empty_like(src)
    threads = len(os.sched_getaffinity(0))
    parts = list(zip(np.array_split(src, threads), np.array_split(dst, threads)))
    best = best_time(lambda: np.copyto(dst, src), repeats)
    with ThreadPoolExecutor(threads) as pool:
        def parallel():
            list(pool.map(lambda p: np.copyto(p[1], p[0]), parts))
        best = min(best, best_time(parallel, repeats))
    return 2 * src.nbytes / best / 1e9


def best_limits(a: MachineLimits, b: MachineLimits) -> MachineLimits:
    """The higher of two measurements of each limit (the less disturbed one)."""
    fma = [x for x in (a.fma_gflops, b.fma_gflops) if x is not None]
    panel = [x for x in (a.panel_gflops, b.panel_gflops) if x is not None]
    return a.model_copy(update={"matmul_gflops": max(a.matmul_gflops, b.matmul_gflops),
                                "panel_gflops": max(panel, default=None),
                                "copy_gbps": max(a.copy_gbps, b.copy_gbps), "fma_gflops": max(fma, default=None)})


def fma_ceiling_gflops() -> float | None:
    try:
        return measure_fma_ceiling().gflops
    except FmaCeilingUnavailable as exc:
        log.warning("the FMA ceiling is not measured here", error=str(exc))
        return None


def measure_limits(matmul_size: int, copy_bytes: int, repeats: int) -> MachineLimits:
    return MachineLimits(
        matmul_size=matmul_size, matmul_gflops=matmul_peak_gflops(matmul_size, repeats),
        panel_gflops=panel_peak_gflops(matmul_size, repeats),
        copy_gbps=copy_bandwidth_gbps(copy_bytes, repeats), copy_bytes=copy_bytes, fma_gflops=fma_ceiling_gflops(),
    )
