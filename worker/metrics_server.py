"""Serve a run's metrics over HTTP (Prometheus text on /metrics) while the command works.

Metrics are for watching, never for correctness: a port that cannot be bound is logged and the
run goes on. After the run the server can linger until one scrape has seen the final figures."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler
from pydantic import BaseModel, Field

from worker.logs import get_logger

log = get_logger(__name__)


class MetricsOptions(BaseModel):
    port: int = Field(0, ge=0, le=65535, description="0: no server")
    address: str = "0.0.0.0"
    linger_s: float = Field(0.0, ge=0, description="after the run, wait this long at most for one more scrape")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, options: MetricsOptions, registry: CollectorRegistry):
        # A pod IP may be IPv6.
        self.address_family = socket.AF_INET6 if ":" in options.address else socket.AF_INET
        self._lock = threading.Lock()
        self._started = 0  # scrapes begun
        self._final_after = None  # scrapes begun before the run ended
        self._final = threading.Event()  # a scrape that began after it has been answered
        super().__init__((options.address, options.port), _handler(registry))

    def scrape(self, respond) -> None:
        with self._lock:
            self._started += 1
            number = self._started
        respond()
        with self._lock:
            if self._final_after is not None and number > self._final_after:
                self._final.set()

    def await_final_scrape(self, timeout_s: float) -> bool:
        with self._lock:
            self._final_after = self._started
        return self._final.wait(timeout_s)


def _handler(registry: CollectorRegistry) -> type:
    base = MetricsHandler.factory(registry)

    class Handler(base):
        def do_GET(self) -> None:
            self.server.scrape(super().do_GET)

    return Handler


@contextmanager
def serving(registry: CollectorRegistry, options: MetricsOptions) -> Iterator[None]:
    """Serve registry for the duration of the block; on a clean exit, linger as options ask."""
    server = _bind(registry, options)
    if server is None:
        yield
        return
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    try:
        yield
        if options.linger_s and not server.await_final_scrape(options.linger_s):
            log.info("metrics.linger_expired", seconds=options.linger_s)
    finally:
        server.shutdown()
        server.server_close()


def _bind(registry: CollectorRegistry, options: MetricsOptions) -> _Server | None:
    if not options.port:
        return None
    try:
        server = _Server(options, registry)
    except OSError as exc:
        log.warning("metrics.unavailable", address=options.address, port=options.port, error=exc.strerror)
        return None
    log.info("metrics.serving", address=options.address, port=server.server_address[1])
    return server
