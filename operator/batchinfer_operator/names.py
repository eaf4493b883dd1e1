"""The API names and the labels that tie Jobs and pods back to their BatchInference."""

GROUP = "batchinfer.io"
VERSION = "v1alpha1"
PLURAL = "batchinferences"
KIND = "BatchInference"
API_VERSION = f"{GROUP}/{VERSION}"

LABEL_RUN = "batchinfer.io/run"
LABEL_ROLE = "batchinfer.io/role"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "batchinfer-operator"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
# Set by the Job controller on every pod of an Indexed Job.
ANNOTATION_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"

# On each Job: digests of the spec fields it was built from (BatchInferenceSpec.built_from).
ANNOTATION_BUILT_FROM = "batchinfer.io/built-from"
# On the gather Job of a run stopped early: why (the stop survives a lost status write).
ANNOTATION_STOP_REASON = "batchinfer.io/stop-reason"

ROLE_SHARDS = "shards"
ROLE_GATHER = "gather"
ROLE_CLEANUP = "cleanup"

# An Indexed Job's pods are named <job>-<index>-<random>, and the API server refuses a Job whose
# "<job>-<last index>" is not a DNS label (63): with "-shards" and indexes up to 9999, 51.
MAX_NAME_LENGTH = 51


def shards_job_name(run_name: str) -> str:
    return f"{run_name}-shards"


def gather_job_name(run_name: str) -> str:
    return f"{run_name}-gather"


def cleanup_job_name(run_name: str) -> str:
    return f"{run_name}-cleanup"


def run_labels(run_name: str, role: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "batchinfer-worker",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_RUN: run_name,
        LABEL_ROLE: role,
    }
