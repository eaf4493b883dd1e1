"""The operator as a real process (`kopf run -m batchinfer_operator`, as its Deployment runs it),
logged in as the chart's ServiceAccount (a TokenRequest token in a kubeconfig: the one stand-in
for the in-cluster credentials a pod would mount), that a test can kill or stop at any moment."""

import os
import signal
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


class OperatorProcess:
    """`start()` / `stop(signal.SIGKILL)`. By default as the chart's Deployment runs it: every
    namespace (`-A`, the ClusterRole), here with a short resync and no fixed ports."""

    def __init__(self, logdir: Path, kubeconfig: Path, resync_seconds: float = 2.0) -> None:
        self.logdir, self.kubeconfig, self.starts = logdir, kubeconfig, 0
        self.resync_seconds = resync_seconds
        self.proc: subprocess.Popen | None = None

    def default_argv(self) -> list[str]:
        return [str(VENV_BIN / "kopf"), "run", "--standalone", "--all-namespaces", "--verbose",
                "-m", "batchinfer_operator"]

    def start(self, argv: list[str] | None = None, env: dict[str, str] | None = None) -> "OperatorProcess":
        assert self.proc is None, "already running"
        self.starts += 1
        base = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "BATCHINFER_"))}
        base |= {"KUBECONFIG": str(self.kubeconfig), "PATH": f"{VENV_BIN}:{base.get('PATH', '')}"}
        if env is None:
            env = {"BATCHINFER_METRICS_PORT": "0", "BATCHINFER_RESYNC_SECONDS": str(self.resync_seconds)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv or self.default_argv(), env=base | env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def log_path(self) -> Path:
        return self.logdir / f"operator-{self.starts}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None, "not running"
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self.proc = None
        return code

    def __enter__(self) -> "OperatorProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.stop(signal.SIGKILL)
