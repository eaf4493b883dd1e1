"""Where the CPU op comes from: a prebuilt read-only directory, the cache, or nowhere (fallback)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(sys.executable).with_name("worker")
# Which backend the platform default resolves to, from a fresh process (the build is per process).
PROBE = """
from worker.logs import configure_logging
configure_logging()
from kernels import get_backend
from worker.platform import Platform
print(get_backend(None, Platform(device="cpu", dtype="float32")).name)
"""


def probe(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory):
    root = tmp_path_factory.mktemp("prebuilt")
    done = subprocess.run([str(WORKER), "build-kernels", str(root)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    library = Path(done.stdout.strip().splitlines()[-1])
    assert library.is_file() and root in library.parents
    for path in [root, *root.rglob("*")]:  # as in an image whose root file system is read-only
        path.chmod(path.stat().st_mode & ~0o222)
    yield root
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def no_compiler_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    unwritable = tmp_path / "not-a-dir"
    unwritable.write_text("a file where the cache directory would go")
    return {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "LANG": "C.UTF-8",
            "BATCHINFER_CACHE_DIR": str(unwritable), **extra}


def test_prebuilt_directory_is_loaded_read_only_without_a_compiler(prebuilt, tmp_path):
    done = probe(no_compiler_env(tmp_path, BATCHINFER_PREBUILT_KERNELS_DIR=str(prebuilt)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "cpu"
    assert "loaded the prebuilt CPU attention op" in done.stderr


def test_without_a_prebuilt_library_or_a_writable_cache_the_default_falls_back(tmp_path):
    empty = tmp_path / "empty-prebuilt"
    empty.mkdir()
    done = probe(no_compiler_env(tmp_path, BATCHINFER_PREBUILT_KERNELS_DIR=str(empty)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "reference"
    assert "attention backend unavailable; using reference" in done.stderr
    assert "not-a-dir" in done.stderr  # the warning says where it could not build


def test_build_kernels_reports_a_failure_without_a_traceback(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no compiler on PATH
    target = tmp_path / "file"
    target.write_text("x")
    done = subprocess.run([str(WORKER), "build-kernels", str(target / "sub")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "error: cannot build or load the CPU attention op" in done.stderr
    assert "Traceback" not in done.stderr


def dynamic_symbols(library: Path, which: str) -> set[str]:
    listing = subprocess.run(["nm", "--dynamic", which, str(library)], capture_output=True, text=True, check=True)
    return {line.split()[-1].split("@")[0] for line in listing.stdout.splitlines() if line.strip()}


def test_every_openmp_entry_point_the_op_imports_is_in_paddles_runtime():
    # An entry point libiomp5 lacks (GCC's nonmonotonic dynamic loop did) binds to a libgomp
    # that Paddle's other libraries load: each thread of the iomp5 team then runs every item.
    from kernels.cpu.build import load_ops
    from worker.platform import paddle

    imported = {s for s in dynamic_symbols(load_ops(), "--undefined-only") if s.startswith(("GOMP_", "omp_"))}
    runtime = Path(paddle.__file__).parent / "libs" / "libiomp5.so"
    assert "GOMP_parallel" in imported
    assert imported - dynamic_symbols(runtime, "--defined-only") == set()
