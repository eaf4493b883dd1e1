"""Storage over every scheme against real servers: local files, HTTP on 127.0.0.1, moto S3."""

import pytest

from tests.storage.killed_writer import kill_writer_midway
from worker import storage
from worker.storage.errors import NotFoundError, StorageError, UnsupportedURLError

DATA = bytes(range(256)) * 400  # 102,400 bytes, every offset distinguishable


@pytest.fixture(params=["local", "http", "http-norange", "s3"])
def stored(request, tmp_path):
    """URL of an object holding DATA, under each scheme."""
    kind = request.param
    if kind == "local":
        path = tmp_path / "data.bin"
        path.write_bytes(DATA)
        return str(path)
    if kind.startswith("http"):
        server = request.getfixturevalue("http_server")
        server.store.honour_range = kind == "http"
        server.store.files["/data.bin"] = DATA
        return server.url("data.bin")
    bucket = request.getfixturevalue("s3_server")
    bucket.put("dir/data.bin", DATA)
    return bucket.url("dir/data.bin")


def test_size_and_full_read(stored):
    assert storage.size(stored) == len(DATA)
    assert b"".join(storage.read(stored)) == DATA


@pytest.mark.parametrize("start,end", [(0, 1), (1000, 5000), (100_000, None), (len(DATA), None), (5, 5)])
def test_ranged_read(stored, start, end):
    assert b"".join(storage.read(stored, start, end)) == DATA[start:end]


def test_missing_object_is_not_found(stored):
    missing = stored.replace("data.bin", "nope.bin")
    with pytest.raises(NotFoundError) as info:
        storage.size(missing)
    assert "nope.bin" in str(info.value)
    assert not storage.exists(missing)


@pytest.mark.parametrize("kind", ["local", "http", "s3"])
def test_write_publishes_only_on_success(kind, tmp_path, request):
    url = _target(kind, tmp_path, request)
    with pytest.raises(RuntimeError):
        with storage.open_writer(url, tmp_dir=str(tmp_path / "spool")) as w:
            w.write(b"half")
            raise RuntimeError("boom")
    assert not storage.exists(url)
    storage.write_stream(url, [b"a" * 10, b"b" * 5], tmp_dir=str(tmp_path / "spool"))
    assert b"".join(storage.read(url)) == b"a" * 10 + b"b" * 5


def _target(kind, tmp_path, request):
    if kind == "local":
        return str(tmp_path / "out" / "o.jsonl")
    if kind == "http":
        return request.getfixturevalue("http_server").url("up/o.jsonl")
    return request.getfixturevalue("s3_server").url("out/o.jsonl")


def test_http_put_is_a_single_request_at_the_end(http_server, tmp_path):
    url = http_server.url("put.jsonl")
    with storage.open_writer(url, tmp_dir=str(tmp_path)) as w:
        for _ in range(100):
            w.write(b"x" * 1000)
        assert http_server.store.requests == []  # nothing sent before commit
    assert [r[0] for r in http_server.store.requests] == ["PUT"]
    assert http_server.store.files["/put.jsonl"] == b"x" * 100_000
    assert list(tmp_path.iterdir()) == []  # spool file removed


def test_http_retries_transient_errors(http_server):
    http_server.store.files["/d"] = DATA
    http_server.store.fail_next = 2
    assert b"".join(storage.read(http_server.url("d"), 10, 20)) == DATA[10:20]
    http_server.store.fail_next = 1
    storage.write_bytes(http_server.url("w"), b"ok")
    assert http_server.store.files["/w"] == b"ok"


def test_http_gives_up_after_bounded_attempts(http_server, monkeypatch):
    monkeypatch.setenv("BATCHINFER_RETRY_ATTEMPTS", "3")
    http_server.store.files["/d"] = DATA
    http_server.store.fail_next = 10
    with pytest.raises(StorageError) as info:
        storage.size(http_server.url("d"))
    assert info.value.status == 503 and "/d" in str(info.value)
    assert len(http_server.store.requests) == 3


@pytest.mark.parametrize("honour_range", [True, False])
def test_http_broken_stream_resumes_at_last_byte(http_server, honour_range):
    http_server.store.files["/d"] = DATA
    http_server.store.honour_range = honour_range
    http_server.store.cut_after = 80_000  # past the first 64 KiB block handed to us
    assert b"".join(storage.read(http_server.url("d"), 1000)) == DATA[1000:]
    resumed_at = int(http_server.store.requests[-1][2].removeprefix("bytes=").rstrip("-"))
    assert resumed_at > 1000


def test_http_errors_hide_query_and_userinfo(http_server):
    url = http_server.url("secret.bin").replace("http://", "http://user:pw@") + "?X-Amz-Signature=abc"
    with pytest.raises(NotFoundError) as info:
        storage.size(url)
    assert "pw" not in str(info.value) and "Signature" not in str(info.value)


def test_unsupported_scheme_is_named():
    with pytest.raises(UnsupportedURLError) as info:
        storage.size("ftp://host/x")
    assert "ftp" in str(info.value)


def test_s3_multipart_is_invisible_until_commit(s3_server, monkeypatch):
    from worker.storage import s3

    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)
    url = s3_server.url("big/o.bin")
    big = DATA * 60  # ~6 MiB: two parts
    with storage.open_writer(url) as w:
        w.write(big)
        assert not storage.exists(url)
    assert s3_server.get("big/o.bin") == big


def test_list_names(s3_server, tmp_path):
    for key in ("p/a", "p/b", "p/sub/c", "q/d"):
        s3_server.put(key, b"1")
    assert storage.list_names(s3_server.url("p")) == ["a", "b"]
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "sub").mkdir()
    assert storage.list_names(str(tmp_path)) == ["a"]


def test_partial_writes_of_a_killed_writer_are_discarded(tmp_path, s3_server):
    kill_writer_midway(str(tmp_path / "p" / "a.jsonl"))
    live = storage.make_writer(str(tmp_path / "p" / "b.jsonl"))  # alive: its temp file stays
    assert storage.discard_partial_writes(str(tmp_path / "p")) == 1
    (left,) = (tmp_path / "p").iterdir()
    assert left.name.startswith(".b.jsonl.")
    live.commit()
    kill_writer_midway(s3_server.url("pre/a.jsonl"))
    assert storage.discard_partial_writes(s3_server.url("pre")) == 1
    assert s3_server.client.list_multipart_uploads(Bucket=s3_server.bucket).get("Uploads", []) == []
