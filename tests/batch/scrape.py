"""Scraping a worker's metrics endpoint over real HTTP while the worker runs, as Prometheus does."""

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from worker import contract

# sample name -> {labels: value}
Snapshot = dict[str, dict[frozenset, float]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> Snapshot | None:
    """One scrape, parsed; None while nothing listens (not started yet, or gone)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{contract.METRICS_PATH}", timeout=5) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    snap: Snapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            snap.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return snap


def scrape_while(proc: subprocess.Popen, port: int, until: Callable[[Snapshot], bool] = lambda s: False,
                 interval_s: float = 0.05, timeout_s: float = 300) -> list[Snapshot]:
    """Scrape until the process exits or a snapshot satisfies until."""
    snaps: list[Snapshot] = []
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if (snap := scrape(port)) is not None:
            snaps.append(snap)
            if until(snap):
                break
        time.sleep(interval_s)
    return snaps


def total(snap: Snapshot, name: str, **labels: str) -> float | None:
    """The sum of the samples of name whose labels include these; None when it has none."""
    want = set(labels.items())
    values = [v for key, v in snap.get(name, {}).items() if want <= key]
    return sum(values) if values else None


def by_label(snap: Snapshot, name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in snap.get(name, {}).items():
        found[dict(key)[label]] = found.get(dict(key)[label], 0) + value
    return found


def phase(snap: Snapshot) -> str:
    [(current, _)] = [(k, v) for k, v in by_label(snap, contract.METRIC_PHASE, contract.LABEL_PHASE).items() if v == 1]
    return current


def assert_never_backwards(snaps: list[Snapshot], names: list[str], series: bool = True) -> None:
    """The sums of these counters only rise from one scrape to the next; with series, each of
    their series too (within one process: a new one starts its `current` series at 0)."""
    for name in names:
        last: dict[frozenset, float] = {}
        last_sum = 0.0
        for i, snap in enumerate(snaps):
            for key, value in snap.get(name, {}).items() if series else ():
                assert value >= last.get(key, 0.0), f"{name}{dict(key)} fell to {value} at scrape {i}"
                last[key] = value
            if (now := total(snap, name)) is not None:
                assert now >= last_sum, f"{name} fell from {last_sum} to {now} at scrape {i}"
                last_sum = now
