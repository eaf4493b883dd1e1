"""Model directories for the bench: written once per spec, cached, swapped in atomically."""

import hashlib
import shutil
import tempfile
from pathlib import Path

from worker.tiny_model import TinyModelSpec, write_tiny_model


def model_dir(cache: Path, spec: TinyModelSpec) -> Path:
    """The directory of `spec` under `cache`, writing it first if it is missing."""
    key = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:12]
    path = cache / f"model-{key}"
    if (path / "config.json").exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=cache))
    try:
        write_tiny_model(tmp, spec)
        tmp.rename(path)  # a crash mid-write never leaves a half model under the final name
    except OSError:
        if not (path / "config.json").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
