"""Gather-style concatenation (S3 server-side copy and streaming) and model download from S3."""

from worker import storage
from worker.storage import s3
from worker.storage.concat import Source, concat
from worker.storage.sync import resolve_model_dir

MIB = 1 << 20


def _blob(tag: int, n: int) -> bytes:
    return bytes([tag]) * n


def test_s3_concat_copies_big_objects_server_side(s3_server):
    parts = [_blob(1, 6 * MIB), _blob(2, 100), _blob(3, 12 * MIB), _blob(4, 10)]
    for i, p in enumerate(parts):
        s3_server.put(f"staging/{i}", p)
    sources = [Source(url=s3_server.url(f"staging/{i}")) for i in range(4)]
    stats = concat(sources, s3_server.url("out/all"))
    assert s3_server.get("out/all") == b"".join(parts)
    # the first object whole, and the third after topping the buffered 100 bytes up to 5 MiB
    assert stats["copied_server_side"] == 6 * MIB + (12 * MIB - (s3.MIN_PART - 100))
    assert stats["streamed"] == 100 + (s3.MIN_PART - 100) + 10


def test_concat_mixes_objects_and_streams_into_any_scheme(s3_server, http_server, tmp_path):
    s3_server.put("a", b"first\n")
    (tmp_path / "b").write_bytes(b"second\n")
    sources = [Source(url=s3_server.url("a")), Source(stream=iter([b"third\n"])),
               Source(url=str(tmp_path / "b"))]
    concat(sources, http_server.url("out.jsonl"), tmp_dir=str(tmp_path / "spool"))
    assert http_server.store.files["/out.jsonl"] == b"first\nthird\nsecond\n"


def test_concat_small_s3_objects_is_a_plain_put(s3_server):
    for i in range(3):
        s3_server.put(f"s/{i}", f"{i}\n".encode())
    stats = concat([Source(url=s3_server.url(f"s/{i}")) for i in range(3)], s3_server.url("o"))
    assert s3_server.get("o") == b"0\n1\n2\n" and stats["copied_server_side"] == 0


def test_model_from_s3_is_downloaded_once(s3_server, tmp_path):
    files = {"config.json": b"{}", "model.safetensors": b"w" * 1000, "tok/vocab.txt": b"a\nb\n"}
    for name, data in files.items():
        s3_server.put(f"models/tiny/{name}", data)
    local_dir = resolve_model_dir(s3_server.url("models/tiny"), cache_dir=tmp_path)
    for name, data in files.items():
        assert (tmp_path / local_dir / name).read_bytes() == data
    # a changed size is fetched again; same-size files are kept (marked to prove it)
    (tmp_path / local_dir / "config.json").write_bytes(b"{}")  # same size: kept
    (tmp_path / local_dir / "tok" / "vocab.txt").write_bytes(b"stale")
    from worker.storage.sync import download_prefix
    from pathlib import Path

    stats = download_prefix(s3_server.url("models/tiny"), Path(local_dir))
    assert stats == {"downloaded": 1, "skipped": 2}
    assert (Path(local_dir) / "tok" / "vocab.txt").read_bytes() == b"a\nb\n"


def test_local_model_dir_is_used_in_place(tmp_path):
    assert resolve_model_dir(str(tmp_path)) == str(tmp_path)
    assert storage.is_local(str(tmp_path))
