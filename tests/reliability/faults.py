"""Real servers on 127.0.0.1 that inject storage faults: an HTTP file server (Range, HEAD, PUT)
and a proxy in front of moto's S3 server. A fault is planned per method (RANGE = a GET with a
Range header) and path substring, for the next `times` matching requests (-1: for ever):

  "500", "403"..  that status, no body   reset      the connection closed with a RST, no answer
  reset-mid   half the body, then RST  stall      no answer for `stall_s`, then closed
  whole       a ranged GET answered 200 with the whole body (a server that ignores Range)
"""

import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


@dataclass
class Fault:
    method: str
    kind: str
    path: str = ""
    times: int = 1


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    injected: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, kind
    requests: list[tuple[str, str]] = field(default_factory=list)
    stall_s: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)

    def add(self, method: str, kind: str, path: str = "", times: int = 1) -> None:
        with self.lock:
            self.faults.append(Fault(method, kind, path, times))

    def take(self, method: str, path: str, ranged: bool) -> str | None:
        with self.lock:
            self.requests.append((method, path))
            for f in self.faults:
                if f.times and f.path in path and f.method in (method, "RANGE" if ranged else method):
                    f.times -= 1
                    self.injected.append((method, path, f.kind))
                    return f.kind
        return None

    def pending(self) -> list[Fault]:
        """Planned faults not injected yet (a test whose faults never fired proves nothing)."""
        return [f for f in self.faults if f.times > 0]


def _rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    plan: FaultPlan

    def log_message(self, *args):
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while (n := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                out += self.rfile.read(n)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, length: int | None = None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        kind = self.plan.take(self.command, self.path, "Range" in self.headers)
        if kind == "reset":
            self.close_connection = True
            return _rst(self.connection)
        if kind == "stall":
            self.plan.closing.wait(self.plan.stall_s)
            self.close_connection = True
            return _rst(self.connection)
        body = self._body() if self.command in ("PUT", "POST") else b""
        if kind and kind.isdigit():
            return self._send(int(kind))
        status, payload, headers = self.serve(body, whole=kind == "whole")
        if kind == "reset-mid" and len(payload) > 1:
            self._send_half(status, payload, headers)
            return
        self._send(status, payload, headers, length=int(headers.pop("Content-Length")) if
                   self.command == "HEAD" and "Content-Length" in headers else None)

    def _send_half(self, status, payload, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.close_connection = True
        _rst(self.connection)

    def serve(self, body: bytes, whole: bool) -> tuple[int, bytes, dict]:
        raise NotImplementedError

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle


class _FileHandler(_Handler):
    files: dict[str, bytes]

    def serve(self, body: bytes, whole: bool) -> tuple[int, bytes, dict]:
        path = self.path.partition("?")[0]  # a presigned URL's query is not part of the name
        if self.command == "PUT":
            self.files[path] = body
            return 201, b"", {}
        if self.command == "DELETE":
            return 204 if self.files.pop(path, None) is not None else 404, b"", {}
        if path not in self.files:
            return 404, b"", {}
        data = self.files[path]
        if self.command == "HEAD":
            return 200, b"", {"Content-Length": str(len(data))}
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if not m or whole:
            return 200, data, {}
        start, end = int(m.group(1)), min(len(data), int(m.group(2) or len(data) - 1) + 1)
        if start >= len(data):
            return 416, b"", {}
        return 206, data[start:end], {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"}


class _ProxyHandler(_Handler):
    upstream: str
    session: requests.Session

    def serve(self, body: bytes, whole: bool) -> tuple[int, bytes, dict]:
        skip = {"transfer-encoding", "content-length", "connection"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        if whole:
            headers.pop("Range", None)
        resp = self.session.request(self.command, self.upstream + self.path, data=body or None, headers=headers,
                                    allow_redirects=False, timeout=30)
        out = {k: v for k, v in resp.headers.items() if k.lower() not in skip | {"content-encoding"}}
        if self.command == "HEAD" and "Content-Length" in resp.headers:
            out["Content-Length"] = resp.headers["Content-Length"]
        return resp.status_code, resp.content, out


class FaultyServer:
    """`with FaultyServer() as s:` a file server; `FaultyServer(upstream=url)` a proxy."""

    def __init__(self, upstream: str | None = None, stall_s: float = 2.0):
        self.plan = FaultPlan(stall_s=stall_s)
        self.files: dict[str, bytes] = {}
        attrs = {"plan": self.plan}
        if upstream:
            attrs |= {"upstream": upstream.rstrip("/"), "session": requests.Session()}
        else:
            attrs |= {"files": self.files}
        handler = type("Handler", (_ProxyHandler if upstream else _FileHandler,), attrs)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def __enter__(self) -> "FaultyServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.plan.closing.set()
        self.server.shutdown()
        self.server.server_close()
