"""The operator and the worker agree on their contract (worker/contract.py): every command line the
operator builds is parsed by the worker's own CLI into the values the CR asked for; the engine
values the API server accepts are the ones the worker accepts; the summary a worker writes is what
the operator reads; and both sides show a URL the same way (issue 13, defect 9)."""

from typing import Any

import pytest
from pydantic.alias_generators import to_camel, to_snake

from batchinfer_operator.jobs import cleanup_job, gather_job, shards_job
from batchinfer_operator.observed import shard_summary
from batchinfer_operator.reconcile import run_values
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.spec import EngineSpec
from batchinfer_operator.url_policy import URLPolicyError, check_url
from batchinfer_operator.validation import InvalidSpecError, validate_spec
from tests.cluster.api import ApiError, KubeClient
from tests.cluster.harness import CR_PATH, JOBS_PATH, cr
from worker import contract, storage
from worker.batch.checkpoint import ChunkStats
from worker.batch.errors import BatchRunError
from worker.batch.summary import Summary
from worker.cli import build_parser, gather, run_shard
from worker.cli.metrics_flags import metrics_options
from worker.storage.sync import resolve_model_dir

SETTINGS = OperatorSettings()
UID = "0f6c2d1e-8a5b-4c3d-9e7f-112233445566"

# Between them these set every engine field, at its lowest legal value and at others.
ENGINES: list[dict[str, Any]] = [
    {},
    {"maxModelLen": 300, "maxNumSeqs": 3, "maxNumBatchedTokens": 7, "blockSize": 8, "tensorParallelSize": 1,
     "enablePrefixCaching": False, "dtype": "bfloat16", "numGpuBlocksOverride": 5},
    {"maxModelLen": 2, "maxNumSeqs": 1, "maxNumBatchedTokens": 1, "blockSize": 1, "numGpuBlocksOverride": 1,
     "enablePrefixCaching": True, "dtype": "auto"},
    {"maxNumBatchedTokens": contract.DEFAULT_MAX_NUM_SEQS},
]
# Engine values the worker would refuse at start: the API server and the operator refuse them first.
REFUSED_ENGINES = [
    ({"tensorParallelSize": 2}, "tensorParallelSize"),
    ({"maxNumBatchedTokens": contract.DEFAULT_MAX_NUM_SEQS - 1}, "maxNumBatchedTokens must be >= maxNumSeqs"),
    ({"maxNumSeqs": 8, "maxNumBatchedTokens": 7}, "maxNumBatchedTokens must be >= maxNumSeqs"),
]


def make_cr(namespace: str = "team-a", error_url: str | None = None, **engine: Any) -> dict[str, Any]:
    output = {"url": "s3://out/results/batch.out.jsonl"} | ({"errorUrl": error_url} if error_url else {})
    obj = cr("contract", model="s3://models/ernie", input={"url": "https://data.example.com/in.jsonl"},
             output=output, shards=3, engine=engine, checkpointLines=7)
    obj["metadata"] |= {"namespace": namespace, "uid": UID, "creationTimestamp": "2026-01-02T03:04:05Z"}
    return obj


def worker_container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][0] == contract.WORKER_EXECUTABLE and "args" not in container
    return container


def pod_environ(container: dict[str, Any], index: int | None = None) -> dict[str, str]:
    """The pod's plain environment, plus what the Job controller adds to an Indexed Job's pods."""
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return env | ({contract.ENV_SHARD_INDEX: str(index)} if index is not None else {})


def test_the_engine_variants_cover_every_engine_field() -> None:
    assert set().union(*ENGINES) == {to_camel(name) for name in EngineSpec.model_fields}


@pytest.mark.parametrize("error_url", [None, "s3://out/results/batch.errors.jsonl"])
@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: ",".join(e) or "defaults")
def test_the_worker_parses_every_shard_command_line_into_what_the_cr_asked(engine, error_url) -> None:
    obj = make_cr(error_url=error_url, **engine)
    spec = validate_spec(obj["spec"], SETTINGS)
    run = run_values(obj, spec, SETTINGS)
    container = worker_container(shards_job(obj, spec, run, SETTINGS))
    args = build_parser().parse_args(container["command"][1:])
    assert args.command == contract.RUN_SHARD
    flags, engine_args = run_shard.parse_flags(args, pod_environ(container, index=2))
    assert (flags.input_file, flags.staging_url, flags.num_shards, flags.model, flags.batch_id, flags.created) == (
        obj["spec"]["input"]["url"], run.staging_url, 3, obj["spec"]["model"], run.batch_id, run.created)
    assert (flags.shard_index, flags.termination_message_path, flags.chunk_lines) == (2, contract.TERMINATION_LOG, 7)
    assert_serves_metrics_on_its_named_port(container, args)
    for name, value in spec.engine.model_dump(exclude_none=True).items():
        assert getattr(engine_args, name) == value, name
    assert engine_args.model == spec.model


@pytest.mark.parametrize("error_url", [None, "s3://out/results/batch.errors.jsonl"])
def test_the_worker_parses_the_gather_command_line_into_what_the_cr_asked(error_url) -> None:
    obj = make_cr(error_url=error_url)
    spec = validate_spec(obj["spec"], SETTINGS)
    run = run_values(obj, spec, SETTINGS)
    container = worker_container(gather_job(obj, spec, run, SETTINGS))
    args = build_parser().parse_args(container["command"][1:])
    assert args.command == contract.GATHER
    flags = gather.parse_flags(args, pod_environ(container))
    assert (flags.staging_url, flags.num_shards, flags.output_file, flags.error_file) == (
        run.staging_url, 3, obj["spec"]["output"]["url"], error_url)
    assert flags.termination_message_path == contract.TERMINATION_LOG
    assert_serves_metrics_on_its_named_port(container, args)


def assert_serves_metrics_on_its_named_port(container: dict[str, Any], args) -> None:
    """The worker listens where the container's named port says, on the pod's IP."""
    [port] = container["ports"]
    assert (port["name"], port["containerPort"]) == (contract.METRICS_PORT_NAME, contract.DEFAULT_METRICS_PORT)
    env = {e["name"]: e for e in container["env"]}
    address = env[contract.ENV_METRICS_ADDRESS]["valueFrom"]["fieldRef"]["fieldPath"]
    options = metrics_options(args, pod_environ(container) | {contract.ENV_METRICS_ADDRESS: "10.1.2.3"},
                              default_port=0)  # what the pod's environment says, not a default
    assert (address, options.port, options.address) == ("status.podIP", port["containerPort"], "10.1.2.3")


def test_the_worker_parses_the_cleanup_command_line() -> None:
    obj = make_cr()
    spec = validate_spec(obj["spec"], SETTINGS)
    run = run_values(obj, spec, SETTINGS)
    container = worker_container(cleanup_job(obj, spec, run, SETTINGS))
    args = build_parser().parse_args(container["command"][1:])
    assert args.command == contract.CLEAN_STAGING
    assert (args.staging_url, args.num_shards) == (run.staging_url, 3)


def test_the_api_server_accepts_every_variant_and_the_jobs_built_from_it(kube: KubeClient) -> None:
    """Dry runs on the real API server: the CRs and the Jobs the previous tests parsed are real ones."""
    for engine in ENGINES:
        obj = make_cr(kube.namespace, error_url="s3://out/errors.jsonl", **engine)
        kube.request("POST", CR_PATH, obj, params={"dryRun": "All"})
        spec = validate_spec(obj["spec"], SETTINGS)
        run = run_values(obj, spec, SETTINGS)
        for job in (shards_job(obj, spec, run, SETTINGS), gather_job(obj, spec, run, SETTINGS),
                    cleanup_job(obj, spec, run, SETTINGS)):
            kube.request("POST", JOBS_PATH, job, params={"dryRun": "All"})


@pytest.mark.parametrize(("engine", "why"), REFUSED_ENGINES, ids=[str(e) for e, _ in REFUSED_ENGINES])
def test_engine_values_the_worker_refuses_are_refused_by_the_api_server_and_the_operator(
        kube: KubeClient, engine: dict[str, Any], why: str) -> None:
    obj = make_cr(kube.namespace, **engine)
    with pytest.raises(ApiError) as refused:
        kube.request("POST", CR_PATH, obj, params={"dryRun": "All"})
    assert refused.value.status == 422 and "spec.engine" in refused.value.body, refused.value.body
    with pytest.raises(InvalidSpecError, match=why):
        validate_spec(obj["spec"], SETTINGS)
    engine_flags = [arg for key, value in engine.items() for arg in (contract.engine_flag(to_snake(key)), str(value))]
    args = build_parser().parse_args([
        contract.RUN_SHARD, contract.FLAG_INPUT, "in.jsonl", contract.FLAG_STAGING, "s", contract.FLAG_NUM_SHARDS, "1",
        contract.FLAG_MODEL, "/m", contract.FLAG_BATCH_ID, "b", contract.FLAG_CREATED, "0", *engine_flags])
    with pytest.raises(BatchRunError, match="invalid engine arguments"):
        run_shard.parse_flags(args, {contract.ENV_SHARD_INDEX: "0"})


def test_the_summary_a_shard_writes_is_the_one_the_operator_reads() -> None:
    stats = ChunkStats(lines=5, served=3, failed={"invalid_request": 2}, prompt_tokens=40, completion_tokens=9)
    summary = Summary.build(stats, stats, 2.0, 1, 1.5, shard_index=1, num_shards=3, byte_start=10, byte_end=90,
                            input_bytes=200)
    pod = {"metadata": {"name": "p"}, "status": {"containerStatuses": [{"name": "worker", "state": {"terminated": {
        "exitCode": 0, "message": summary.termination_message().decode()}}}]}}
    read = shard_summary(pod)
    assert read == contract.ShardSummary.model_validate(summary.model_dump())
    assert (read.requests, read.served, read.failed_total, read.shard_index) == (5, 3, 2, 1)


def test_both_sides_show_a_presigned_url_without_its_secrets() -> None:
    url = "https://user:pass@bucket.example.com:8443/in.jsonl?X-Amz-Signature=deadbeef#frag"
    shown = "https://bucket.example.com:8443/in.jsonl"
    assert storage.parse_url(url).safe == shown
    with pytest.raises(URLPolicyError) as refused:
        check_url("input.url", url, frozenset({"s3"}), [])
    assert shown in str(refused.value) and "deadbeef" not in str(refused.value) and "pass" not in str(refused.value)
    assert contract.redact("/data/in?.jsonl") == "/data/in?.jsonl"  # a local path carries no secret


def test_the_worker_and_the_operator_refuse_a_model_over_https_with_the_same_words() -> None:
    model = "https://models.example.com/ernie"
    problem = contract.model_location_problem(model)
    assert problem and contract.model_location_problem("s3://m/ernie") is None
    with pytest.raises(InvalidSpecError, match="spec.model") as refused:
        validate_spec(make_cr()["spec"] | {"model": model}, SETTINGS)
    assert problem in str(refused.value)
    with pytest.raises(storage.StorageError) as failed:
        resolve_model_dir(model)
    assert problem in str(failed.value)
