"""Writers that never finish: one killed mid-upload (SIGKILL, for real, in a child process)
leaves a temp file beside a local output, a spool file before an HTTP PUT, or an open
multipart upload on S3; the next writer of the same destination (a rerun) removes exactly
those, and nothing of other destinations or of a writer still alive. A writer that fails with
an exception, in its body or while publishing, leaves nothing behind."""

from pathlib import Path

import pytest

from tests.storage.killed_writer import kill_writer_midway
from worker import storage


def _names(d: Path) -> list[str]:
    return sorted(f.name for f in d.iterdir())


def test_local_rerun_removes_the_killed_writers_temp_file_only(tmp_path):
    out = tmp_path / "out.jsonl"
    live = storage.make_writer(str(out))  # a writer of the same destination, still running
    kill_writer_midway(str(out))
    kill_writer_midway(str(tmp_path / "out.jsonl.bak"))  # another destination
    (tmp_path / ".out.jsonl.mine.tmp").write_bytes(b"a user's file")  # not our name pattern
    before = _names(tmp_path)
    assert len(before) == 4 and all(n.startswith(".out.jsonl.") and n.endswith(".tmp") for n in before)

    storage.write_bytes(str(out), b"done\n")  # the rerun
    gone = set(before) - set(_names(tmp_path))
    assert len(gone) == 1 and set(_names(tmp_path)) - set(before) == {"out.jsonl"}
    assert ".out.jsonl.mine.tmp" not in gone and not gone.pop().startswith(".out.jsonl.bak.")
    live.write(b"live\n")
    live.commit()  # untouched by the rerun's cleanup
    assert out.read_bytes() == b"live\n"


def test_http_rerun_removes_the_killed_writers_spool_file_only(tmp_path, http_server):
    spool = tmp_path / "spool"
    kill_writer_midway(http_server.url("out.jsonl"), str(spool))
    kill_writer_midway(http_server.url("other.jsonl"), str(spool))
    assert len(_names(spool)) == 2 and http_server.store.requests == []  # nothing sent before commit
    storage.write_bytes(http_server.url("out.jsonl"), b"done\n", str(spool))
    assert http_server.store.files["/out.jsonl"] == b"done\n"
    assert len(_names(spool)) == 1  # the other destination's, for its own rerun
    storage.write_bytes(http_server.url("other.jsonl"), b"done\n", str(spool))
    assert _names(spool) == []


def _uploads(bucket) -> list[str]:
    return sorted(u["Key"] for u in bucket.client.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", []))


@pytest.mark.parametrize("size", [5, 6 << 20], ids=["single-put", "multipart"])
def test_s3_rerun_aborts_the_killed_writers_upload_of_that_key_only(s3_server, monkeypatch, size):
    from worker.storage import s3

    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)
    for key in ("out/o.jsonl", "out/o.jsonl.2", "out/o"):  # the key, and keys it prefixes or extends
        kill_writer_midway(s3_server.url(key))
    assert _uploads(s3_server) == ["out/o", "out/o.jsonl", "out/o.jsonl.2"]
    storage.write_bytes(s3_server.url("out/o.jsonl"), b"x" * size)  # the rerun
    assert s3_server.get("out/o.jsonl") == b"x" * size
    assert _uploads(s3_server) == ["out/o", "out/o.jsonl.2"]


def test_writer_failing_in_its_body_leaves_nothing(tmp_path, s3_server, http_server):
    targets = [str(tmp_path / "out" / "o.jsonl"), http_server.url("o.jsonl"), s3_server.url("out/o.jsonl")]
    for url in targets:
        with pytest.raises(RuntimeError), storage.open_writer(url, str(tmp_path / "spool")) as w:
            w.write(b"half\n" * 1000)
            if hasattr(w, "flush_part"):
                w.flush_part()  # the S3 upload is open
            raise RuntimeError("the run failed")
        assert not storage.exists(url)
    assert _names(tmp_path / "out") == [] and _names(tmp_path / "spool") == []
    assert _uploads(s3_server) == []


def test_writer_failing_to_publish_leaves_nothing(tmp_path, s3_server):
    (tmp_path / "o.jsonl").mkdir()  # the target is a directory: the rename fails
    with pytest.raises(storage.StorageError, match="cannot publish"):
        storage.write_bytes(str(tmp_path / "o.jsonl"), b"data\n")
    assert _names(tmp_path) == ["o.jsonl"]
    with pytest.raises(storage.StorageError, match="EntityTooSmall"), \
            storage.open_writer(s3_server.url("out/o.jsonl")) as w:
        w.write(b"small\n")
        w.flush_part()  # a first part under 5 MiB: S3 refuses to complete the upload
        w.write(b"last\n")
    assert not storage.exists(s3_server.url("out/o.jsonl")) and _uploads(s3_server) == []
