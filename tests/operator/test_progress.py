"""Live progress, the pure part: a worker's real /metrics text parsed, shard records that only
grow, finished shards counted by their byte range, and status writes that drop stale fields."""

from prometheus_client import generate_latest

from batchinfer_operator.kube import merge_patch
from batchinfer_operator.progress import parse_metrics, progress
from batchinfer_operator.status import Progress, ShardLive
from worker.batch.checkpoint import ChunkStats
from worker.contract import ShardSummary, shard_range
from worker.metrics import WorkerMetrics

SIZE = 3000


def worker_page(resumed: ChunkStats, resumed_to: int, start: int = 1000, end: int = 2000) -> str:
    """What a shard pod's endpoint serves, from the worker's own registry."""
    metrics = WorkerMetrics()
    metrics.start_range(start, end, SIZE, resumed, resumed_to)
    return generate_latest(metrics.registry).decode()


def test_a_page_before_the_checkpoints_are_read_has_no_figures() -> None:
    assert parse_metrics(generate_latest(WorkerMetrics().registry).decode()) is None


def test_the_figures_sum_the_attempts() -> None:
    stats = ChunkStats(lines=5, served=4, failed={"invalid_json": 1}, completion_tokens=40)
    scraped = parse_metrics(worker_page(stats, 1400))
    assert scraped.live == ShardLive(bytes_done=400, completed=4, failed=1, generation_tokens=40)
    assert scraped.input_size == SIZE


def test_a_record_never_shrinks_and_an_unreachable_pod_keeps_its_last_one() -> None:
    prior = Progress(bytes_total=SIZE, running={"1": ShardLive(bytes_done=500, completed=5)})
    restarted = parse_metrics(worker_page(ChunkStats(lines=3, served=3), 1300))  # fewer than seen: a slow reader
    again = progress(prior, {1: restarted}, finished=set(), summaries=[], num_shards=3, elapsed_s=10, done=False)
    assert again.running["1"].bytes_done == 500 and again.running["1"].completed == 5
    unreachable = progress(prior, {}, finished=set(), summaries=[], num_shards=3, elapsed_s=10, done=False)
    assert unreachable.running == prior.running and unreachable.bytes_done == 500


def test_finished_shards_count_their_whole_range_and_leave_the_running_records() -> None:
    prior = Progress(bytes_total=SIZE, running={"0": ShardLive(bytes_done=900, generation_tokens=9)})
    summary = ShardSummary(requests=10, served=10, failed={}, prompt_tokens=1, completion_tokens=70,
                           cached_tokens=0, elapsed_s=1, requests_per_s=1, completion_tokens_per_s=1)
    result = progress(prior, {}, finished={0}, summaries=[summary], num_shards=3, elapsed_s=20, done=False)
    start, end = shard_range(SIZE, 0, 3)
    assert result.running == {} and result.bytes_done == end - start and result.percent == "33%"
    assert result.tokens_per_second == 3.5 and result.eta == "0m40s"  # 1000 bytes in 20 s, 2000 to go


def test_a_status_write_removes_what_the_new_status_no_longer_has() -> None:
    old = {"phase": "Running", "progress": {"eta": "1m", "running": {"0": {"bytesDone": 1}, "1": {"bytesDone": 2}}}}
    new = {"phase": "Running", "progress": {"running": {"1": {"bytesDone": 3}}}}
    assert merge_patch(old, new) == {"phase": "Running", "progress": {"eta": None, "running": {
        "0": None, "1": {"bytesDone": 3}}}}
