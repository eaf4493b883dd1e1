"""Real servers on 127.0.0.1 for storage tests: a threaded HTTP file server (Range, HEAD, PUT;
a mode that ignores Range; injectable 503s) and moto's S3 in server mode."""

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class FileStore:
    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    fail_next: int = 0  # the next N requests get a 503
    cut_after: int | None = None  # GET bodies stop (connection dropped) after N bytes, once
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, range
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(store: FileStore):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def _fail(self) -> bool:
            with store.lock:
                store.requests.append((self.command, self.path, self.headers.get("Range", "")))
                if store.fail_next <= 0:
                    return False
                store.fail_next -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def _missing(self) -> bool:
            if self.path in store.files:
                return False
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def do_HEAD(self):
            if self._fail() or self._missing():
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(store.files[self.path])))
            self.end_headers()

        def do_GET(self):
            if self._fail() or self._missing():
                return
            data = store.files[self.path]
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if m and store.honour_range:
                start = int(m.group(1))
                end = min(len(data), int(m.group(2)) + 1 if m.group(2) else len(data))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
                body = data[start:end]
            else:
                self.send_response(200)
                body = data
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = store.cut_after
            if cut is not None and cut < len(body):
                store.cut_after = None
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def do_PUT(self):
            if self._fail():
                return
            length = int(self.headers.get("Content-Length", "0"))
            store.files[self.path] = self.rfile.read(length)
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_DELETE(self):
            if self._fail():
                return
            self.send_response(204 if store.files.pop(self.path, None) is not None else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


class HTTPFileServer:
    def __init__(self):
        self.store = FileStore()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.store))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_server(monkeypatch):
    monkeypatch.setenv("BATCHINFER_RETRY_BASE_SECONDS", "0.01")
    with HTTPFileServer() as server:
        yield server


@pytest.fixture(scope="session")
def _moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_server(_moto_server, monkeypatch, tmp_path):
    """moto's S3 endpoint with a fresh bucket; the standard AWS variables point boto3 at it."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("BATCHINFER_RETRY_BASE_SECONDS", "0.01")
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=_moto_server)
    client.create_bucket(Bucket=bucket)
    return S3Bucket(endpoint=_moto_server, bucket=bucket, client=client)


@dataclass
class S3Bucket:
    endpoint: str
    bucket: str
    client: object

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))
