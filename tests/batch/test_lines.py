"""Byte-range line splitting: shards partition the lines exactly, whatever the cut points."""

import pytest

from worker.batch.lines import has_line_start, iter_lines
from worker.contract import shard_range

LINES = [b"a", b"", b"bcdefghij" * 3, b"k", b"\xff\xfe not utf8", b"lm", b"", b"nopqrstuvwxyz" * 5]


def _file(tmp_path, trailing_newline: bool):
    data = b"\n".join(LINES) + (b"\n" if trailing_newline else b"")
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    return str(path), data


def _expected(data: bytes):
    out, pos = [], 0
    for line in LINES:
        out.append((pos, line))
        pos += len(line) + 1
    return out


@pytest.mark.parametrize("trailing_newline", [True, False])
@pytest.mark.parametrize("num_shards", [1, 2, 3, 7, 50, 500])
def test_shards_partition_lines(tmp_path, trailing_newline, num_shards):
    url, data = _file(tmp_path, trailing_newline)
    got = []
    for i in range(num_shards):
        start, end = shard_range(len(data), i, num_shards)
        for raw in iter_lines(url, start, end):
            assert start <= raw.offset < end  # owned by the shard holding its first byte
            assert data[raw.offset:raw.end].rstrip(b"\n") == raw.data
            got.append((raw.offset, raw.data))
    assert got == _expected(data)


@pytest.mark.parametrize("where", ["local", "http-ignoring-range"])
def test_two_shards_cut_anywhere(tmp_path, http_server, where):
    """Two shards cut at every byte of the file (every 5th against a server ignoring Range)."""
    url, data = _file(tmp_path, True)
    cuts = range(len(data) + 1)
    if where != "local":
        http_server.store.files["/in.jsonl"] = data
        http_server.store.honour_range = False
        url, cuts = http_server.url("in.jsonl"), cuts[::5]
    for cut in cuts:
        first = [r.data for r in iter_lines(url, 0, cut)]
        second = [r.data for r in iter_lines(url, cut, len(data))]
        assert first + second == LINES, cut


def test_shard_range_tiles_and_checks_index():
    size = 1003
    ranges = [shard_range(size, i, 7) for i in range(7)]
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    with pytest.raises(ValueError, match="shard index 7"):
        shard_range(size, 7, 7)


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_has_line_start_agrees_with_the_reader_on_every_range(tmp_path, trailing_newline):
    url, data = _file(tmp_path, trailing_newline)
    for start in range(len(data) + 1):
        for end in range(start, len(data) + 1):
            assert has_line_start(url, start, end) == any(True for _ in iter_lines(url, start, end)), (start, end)


def test_has_line_start_reads_no_further_than_its_range(tmp_path, http_server):
    """A range inside one long line reads its own bytes (and the one before), not the line."""
    url, data = _file(tmp_path, True)
    http_server.store.files["/in.jsonl"] = data
    last = data.rindex(b"\n", 0, len(data) - 1) + 1  # the long last line
    assert not has_line_start(http_server.url("in.jsonl"), last + 10, last + 20)
    assert [r[2] for r in http_server.store.requests] == [f"bytes={last + 9}-{last + 18}"]
