"""The Job builders: every spec field lands where it should; pods are locked down."""

from typing import Any

import kubernetes_validate
import pytest

from batchinfer_operator.jobs import gather_job, shards_job
from batchinfer_operator.reconcile import run_values
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.validation import validate_spec
from tests.operator.builders import UID, make_cr

SETTINGS = OperatorSettings(worker_image="registry.local/worker:1")
AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}]}}}
FULL = dict(
    shards=4, parallelism=2, queue_name="gpu-queue", suspend=True,
    active_deadline_seconds=3600, ttl_seconds_after_finished=60,
    credentials={"secretName": "creds"},
    retries={"perShard": 5, "failedShardsAllowed": 1},
    engine={"maxModelLen": 4096, "maxNumSeqs": 32, "maxNumBatchedTokens": 8192, "blockSize": 32,
            "tensorParallelSize": 1, "enablePrefixCaching": False, "dtype": "bfloat16",
            "numGpuBlocksOverride": 100},
    worker={
        "image": "my/worker:2", "imagePullPolicy": "Always",
        "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "16Gi"}, "requests": {"cpu": "2"}},
        "nodeSelector": {"gpu": "a100"}, "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "affinity": AFFINITY, "priorityClassName": "batch-low",
        "serviceAccountName": "runner", "imagePullSecrets": [{"name": "pull"}],
        "env": [{"name": "EXTRA", "value": "1"}],
        "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "m"}}],
        "volumeMounts": [{"name": "models", "mountPath": "/models"}], "scratchSizeLimit": "10Gi",
    },
)


def build(kind: Any, **spec: Any) -> tuple[dict, dict]:
    cr = make_cr(**spec)
    parsed = validate_spec(cr["spec"], SETTINGS)
    return cr, kind(cr, parsed, run_values(cr, parsed, SETTINGS), SETTINGS)


def test_shards_job_carries_every_spec_field() -> None:
    cr, job = build(shards_job, **FULL)
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["name"] == "run-shards" and job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["ownerReferences"] == [{
        "apiVersion": "batchinfer.io/v1alpha1", "kind": "BatchInference", "name": "run", "uid": UID,
        "controller": True, "blockOwnerDeletion": True}]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert job["spec"]["template"]["metadata"]["labels"]["batchinfer.io/run"] == "run"
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 2)
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (5, 1)
    assert spec["podReplacementPolicy"] == "Failed" and spec["suspend"] is True
    assert spec["podFailurePolicy"]["rules"][0] == {
        "action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert spec["activeDeadlineSeconds"] == 3600
    assert "ttlSecondsAfterFinished" not in spec  # outlives the gather; goes with the CR
    assert "backoffLimit" not in spec
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"gpu": "a100"} and pod["tolerations"][0]["key"] == "gpu"
    assert pod["affinity"] == AFFINITY and pod["priorityClassName"] == "batch-low"
    assert pod["serviceAccountName"] == "runner" and pod["imagePullSecrets"] == [{"name": "pull"}]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "m"}} in pod["volumes"]
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "10Gi"}} in pod["volumes"]
    assert container["image"] == "my/worker:2" and container["imagePullPolicy"] == "Always"
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 1, "memory": "16Gi"}, "requests": {"cpu": "2"}}
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert {"name": "EXTRA", "value": "1"} in container["env"]
    assert {"name": "models", "mountPath": "/models"} in container["volumeMounts"]
    assert (container["terminationMessagePath"], container["terminationMessagePolicy"]) == (
        "/dev/termination-log", "File")


def test_shard_command_is_the_worker_contract() -> None:
    cr, job = build(shards_job, **FULL)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == [
        "worker", "run-shard", "--input", "s3://in/batch.jsonl",
        "--staging", f"s3://out/results/.batchinfer-staging/team-a/run-{UID}/",
        "--num-shards", "4", "--model", "s3://models/ernie",
        "--batch-id", UID.replace("-", ""), "--created", "1767323045",
        "--max-model-len", "4096", "--max-num-seqs", "32", "--max-num-batched-tokens", "8192",
        "--block-size", "32", "--tensor-parallel-size", "1", "--no-enable-prefix-caching", "--dtype", "bfloat16",
        "--num-gpu-blocks-override", "100",
    ]


def test_gather_job_runs_gather_without_gpus() -> None:
    cr, job = build(gather_job, **FULL)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert job["metadata"]["name"] == "run-gather"
    assert container["command"] == [
        "worker", "gather", "--staging", f"s3://out/results/.batchinfer-staging/team-a/run-{UID}/",
        "--num-shards", "4", "--output", "s3://out/results/batch.out.jsonl", "--delete-staging"]
    _, kept = build(gather_job, **FULL | {"staging": {"keep": True}})
    assert "--delete-staging" not in kept["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "nvidia.com/gpu" not in str(container["resources"])
    assert job["spec"]["completions"] == 1 and job["spec"]["backoffLimit"] == 5
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert "ttlSecondsAfterFinished" not in job["spec"]  # set once the run's status records the outcome
    assert "completionMode" not in job["spec"]


def test_pods_are_locked_down() -> None:
    for kind in (shards_job, gather_job):
        _, job = build(kind)
        pod = job["spec"]["template"]["spec"]
        ctx = pod["containers"][0]["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["runAsUser"] != 0
        assert {"name": "scratch", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
        assert pod["containers"][0]["image"] == "registry.local/worker:1"
        assert "envFrom" not in pod["containers"][0]  # no Secret named, none mounted


def test_defaults_without_kueue_follow_spec_suspend() -> None:
    _, job = build(shards_job)
    assert job["spec"]["suspend"] is False and job["spec"]["parallelism"] == 3
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
    _, queued = build(shards_job, queue_name="q")
    assert queued["spec"]["suspend"] is True  # Kueue admits it


@pytest.mark.parametrize("kind", [shards_job, gather_job], ids=["shards", "gather"])
@pytest.mark.parametrize("spec", [{}, FULL], ids=["minimal", "full"])
def test_jobs_are_valid_kubernetes_objects(kind: Any, spec: dict) -> None:
    _, job = build(kind, **spec)
    try:
        kubernetes_validate.validate(job, "1.33", strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(str(exc).splitlines()[0])
