"""Device, dtype and the CPU thread environment, chosen once for the whole process.

Paddle reads OMP_NUM_THREADS and MKL_DEBUG_CPU_TYPE when it is imported: on this class of
machine they take a 2048x2048 fp32 matmul from 27 to ~120 GFLOP/s (DESIGN.md section 5), so
every module that needs paddle imports it from here, never directly.
"""

import os
from dataclasses import dataclass


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


configure_cpu_environment()

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


__all__ = ["paddle", "Platform", "select_platform", "configure_cpu_environment"]
