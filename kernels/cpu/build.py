"""Build the C++ op with paddle.utils.cpp_extension once, cache it, load it.

The shared library lives under a directory keyed by a hash of the sources, the compiler
flags, the Paddle version and the instruction set it targets, so an edit or another kind of
CPU rebuilds and a second process only loads (no compiler, no subprocess). Concurrent first
builds are serialised by a file lock.

On x86-64 CPUs with AVX2 and FMA the target is x86-64-v3 rather than -march=native, so a
library built once (`worker build-kernels`, run in the image build) serves every such CPU:
BATCHINFER_PREBUILT_KERNELS_DIR names that read-only directory, searched before the cache.
"""

import contextlib
import fcntl
import functools
import hashlib
import os
import platform
import sys
from pathlib import Path

from worker.logs import get_logger
from worker.platform import paddle

log = get_logger(__name__)

SOURCES = tuple(Path(__file__).with_name(n)
                for n in ("paged_attention.cc", "packed_matmul.cc", "swiglu.cc", "rotary.cc", "rms_norm.cc"))
HEADERS = tuple(Path(__file__).with_name(n)
                for n in ("attention_math.h", "panel_micro_kernel.h", "panel_micro_kernel_512.h"))
# -fopenmp compiles the pragmas; linking Paddle's own libiomp5 keeps one OpenMP runtime
# (and one thread pool) in the process instead of adding libgomp beside it.
CXX_FLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-Wno-unused-function"]
LD_FLAGS = ["-liomp5"]
OP_NAMES = ("bi_paged_attention", "bi_write_kv", "bi_pack_weight", "bi_packed_matmul", "bi_silu_mul",
            "bi_rotary_split", "bi_rms_normalize")


class KernelBuildError(RuntimeError):
    """The fast CPU op could not be compiled or loaded here (no compiler, unwritable cache, ...)."""


# What x86-64-v3 requires, as /proc/cpuinfo spells it (abm = LZCNT).
_X86_64_V3 = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})


def _cpuinfo(field: str) -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    return ""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of /proc/cpuinfo (empty where there is none)."""
    return frozenset(_cpuinfo("flags").split())


def wide_kernel_default() -> bool:
    """The AVX-512 GEMM and attention tiles where the CPU has AVX-512F, unless BATCHINFER_AVX512=0
    (the library stays x86-64-v3: those functions are compiled for AVX-512 on their own)."""
    return "avx512f" in cpu_flags() and os.environ.get("BATCHINFER_AVX512", "1") != "0"


@functools.cache
def target() -> tuple[str, str]:
    """(the -march flag, what the library is specific to)."""
    if platform.machine() == "x86_64" and _X86_64_V3 <= cpu_flags():
        return "-march=x86-64-v3", "x86-64-v3"
    return "-march=native", _cpuinfo("model name") or platform.processor()  # this CPU only


def build_key() -> str:
    h = hashlib.sha256()
    for source in (*SOURCES, *HEADERS):
        h.update(source.read_bytes())
    # The Paddle install too: the op finds Paddle's libraries (libiomp5) through its RUNPATH,
    # that install's libs; a cache shared by virtualenvs broke when one was removed.
    paddle_dir = str(Path(paddle.__file__).resolve().parent)
    for part in (*CXX_FLAGS, *LD_FLAGS, paddle.__version__, paddle_dir, platform.machine(), *target()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """BATCHINFER_CACHE_DIR, else $XDG_CACHE_HOME/batchinfer, else ~/.cache/batchinfer."""
    if os.environ.get("BATCHINFER_CACHE_DIR"):
        return Path(os.environ["BATCHINFER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "batchinfer"


def library_path(root: Path, name: str) -> Path:
    """Where a build under `root` (a cache or a prebuilt directory) leaves the library."""
    return root / "kernels" / name / name / f"{name}.so"


def _compile(name: str, build_dir: Path) -> set[str]:
    """Compile and register (load() does both); returns the op names now available."""
    from paddle.utils.cpp_extension import load

    log.info("building the CPU attention op", build_dir=str(build_dir))
    # cpp_extension prints progress with print(); keep stdout for the caller's output.
    with contextlib.redirect_stdout(sys.stderr):
        module = load(name=name, sources=[str(s) for s in SOURCES], extra_cxx_cflags=[*CXX_FLAGS, target()[0]],
                      extra_ldflags=LD_FLAGS, build_directory=str(build_dir), verbose=False)
    return {op for op in OP_NAMES if hasattr(module, op)}


def _register(library: Path) -> set[str]:
    from paddle.utils.cpp_extension import load_op_meta_info_and_register_op

    return set(load_op_meta_info_and_register_op(str(library)))


@functools.cache
def _load_once() -> Path | KernelBuildError:
    try:
        return _build_and_register()
    except KernelBuildError as exc:  # remembered: a failed build is not retried per call
        log.warning("the CPU attention op is unavailable", error=str(exc))
        return exc


def load_ops() -> Path:
    """Build if needed and register the ops in this process; returns the shared library path."""
    result = _load_once()
    if isinstance(result, KernelBuildError):
        raise result
    return result


def _build_and_register() -> Path:
    name = f"bi_cpu_{build_key()}"
    prebuilt_dir = os.environ.get("BATCHINFER_PREBUILT_KERNELS_DIR")
    prebuilt = library_path(Path(prebuilt_dir), name) if prebuilt_dir else None
    if prebuilt is not None and prebuilt.exists():
        return _load_prebuilt(prebuilt)
    library = library_path(cache_root(), name)
    build_dir = library.parent.parent
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        with open(build_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            registered = _register(library) if library.exists() else _compile(name, build_dir)
    except Exception as exc:  # compiler missing, read-only cache, ABI trouble: all mean "cannot"
        raise KernelBuildError(f"cannot build or load the CPU attention op in {build_dir}: {exc}") from exc
    return _all_defined(library, registered)


def _load_prebuilt(library: Path) -> Path:
    """A library built ahead of time, on a read-only file system: no lock, no compiler."""
    try:
        registered = _register(library)
    except Exception as exc:
        raise KernelBuildError(f"cannot load the prebuilt CPU attention op {library}: {exc}") from exc
    log.info("loaded the prebuilt CPU attention op", library=str(library))
    return _all_defined(library, registered)


def _all_defined(library: Path, registered: set[str]) -> Path:
    missing = set(OP_NAMES) - registered
    if missing:
        raise KernelBuildError(f"{library} does not define {sorted(missing)}")
    return library
