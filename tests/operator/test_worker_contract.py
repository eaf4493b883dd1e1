"""Every flag the operator puts on a pod's command line is one the worker CLI accepts."""

import subprocess

import pytest

from batchinfer_operator import worker_command as wc
from tests.operator.conftest import worker_has
from tests.cluster.kubelet import VENV_BIN

pytestmark = pytest.mark.skipif(not (worker_has("run-shard") and worker_has("gather")),
                                reason="worker run-shard/gather")


def help_text(command: str) -> str:
    result = subprocess.run([f"{VENV_BIN}/worker", command, "--help"], capture_output=True, text=True, check=True)
    return result.stdout


def test_run_shard_accepts_every_flag_we_pass() -> None:
    text = help_text(wc.RUN_SHARD)
    flags = [wc.FLAG_INPUT, wc.FLAG_STAGING, wc.FLAG_NUM_SHARDS, wc.FLAG_MODEL, wc.FLAG_BATCH_ID,
             wc.FLAG_CREATED, *wc.ENGINE_FLAGS.values(), *wc.FLAG_PREFIX_CACHING]
    assert [f for f in flags if f not in text] == []
    assert wc.ENV_SHARD_INDEX in text and wc.ENV_TERMINATION_LOG in text


def test_gather_accepts_every_flag_we_pass() -> None:
    text = help_text(wc.GATHER)
    flags = (wc.FLAG_STAGING, wc.FLAG_NUM_SHARDS, wc.FLAG_OUTPUT, wc.FLAG_ERROR_FILE)
    assert [f for f in flags if f not in text] == []
