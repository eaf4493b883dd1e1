"""Device, dtype and the CPU thread environment, chosen once for the whole process.

Paddle reads OMP_NUM_THREADS and MKL_DEBUG_CPU_TYPE when it is imported: on this class of
machine they take a 2048x2048 fp32 matmul from 27 to ~120 GFLOP/s (DESIGN.md section 5), so
every module that needs paddle imports it from here, never directly. Here too glibc's malloc is
told to keep what is freed (keep_freed_memory), before Paddle allocates anything.
"""

import ctypes
import os
import platform
from dataclasses import dataclass

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _is_amd_cpu() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any("AuthenticAMD" in line for line in f if line.startswith("vendor_id"))
    except OSError:
        return False


def configure_cpu_environment() -> None:
    """Set thread counts and MKL's CPU dispatch; an explicit user setting always wins."""
    os.environ.setdefault("OMP_NUM_THREADS", str(_cpu_count()))
    if _is_amd_cpu():
        # MKL takes a slow generic path on AMD unless told to use its AVX2 kernels.
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")


def keep_freed_memory() -> bool:
    """Serve every block from glibc's heap and keep what is freed there, so the next step reuses it.

    By default glibc maps each block over 32 MiB fresh and unmaps it on free: a prefill step's
    activations were new pages every step, ~220k page faults per 2048-token step of the bench model
    at 3-6 us each in this VM (~0.5 s of ~8 s; benchmarks/RESULTS.md). Memory once used stays with
    the process, which a worker reuses on its next step. BATCHINFER_KEEP_FREED_MEMORY=0, or the
    user's own MALLOC_* or GLIBC_TUNABLES settings, leave glibc as it is. True when it took effect.
    """
    if os.environ.get("BATCHINFER_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    if "GLIBC_TUNABLES" in os.environ or any(name.startswith("MALLOC_") for name in os.environ):
        return False
    libc = ctypes.CDLL(None)  # the C library this process runs on
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


configure_cpu_environment()
keep_freed_memory()

import paddle  # noqa: E402  (must follow the environment set above)


@dataclass(frozen=True)
class Platform:
    device: str  # "cpu" or "gpu"
    dtype: str  # "float32" on CPU; "bfloat16" on GPU

    @property
    def is_gpu(self) -> bool:
        return self.device == "gpu"


def select_platform(dtype: str | None = None) -> Platform:
    """CPU: float32 only (Paddle registers no bf16/fp16 CPU matmul). GPU: bfloat16 by default."""
    is_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if not is_gpu:
        if dtype not in (None, "auto", "float32"):
            raise ValueError(f"dtype={dtype!r} is not supported on CPU; only float32 is")
        paddle.set_device("cpu")
        return Platform(device="cpu", dtype="float32")
    if dtype not in (None, "auto", "float32", "bfloat16", "float16"):
        raise ValueError(f"dtype={dtype!r} must be one of auto, float32, bfloat16, float16")
    paddle.set_device("gpu")
    return Platform(device="gpu", dtype="bfloat16" if dtype in (None, "auto") else dtype)


__all__ = ["paddle", "Platform", "select_platform", "configure_cpu_environment", "keep_freed_memory"]
