"""A writer killed mid-upload, for real: a child process opens a storage writer, writes (and,
on S3, uploads a part, which opens the multipart upload), then SIGKILLs itself."""

import signal
import subprocess
import sys

_CHILD = """
import os, signal, sys
from worker import storage
from worker.storage import s3
w = storage.make_writer(sys.argv[1], sys.argv[2] or None)
w.write(b"half of it\\n" * 1000)
if isinstance(w, s3.S3Writer):
    w.flush_part()
os.kill(os.getpid(), signal.SIGKILL)
"""


def kill_writer_midway(url: str, tmp_dir: str | None = None) -> None:
    proc = subprocess.run([sys.executable, "-c", _CHILD, url, tmp_dir or ""], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
