"""The run-batch test inputs of FastDeploy and vLLM (their INPUT_BATCH strings, verbatim), and
every output line checked against their BatchRequestOutput models (fields copied below: we do
not import either project) and the bodies against the openai SDK's types."""

from typing import Any

from openai.types import Completion
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from tests.batch.conftest import ENGINE_FLAGS, FIXED, worker_cli

# FastDeploy tests/entrypoints/openai/test_run_batch.py (leading newline included)
FASTDEPLOY_INPUT_BATCH = """
{"custom_id": "req-00001", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Can you write a short poem? (id=1)"}], "temperature": 0.7, "max_tokens": 200}}
{"custom_id": "req-00002", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "What can you do? (id=2)"}], "temperature": 0.7, "max_tokens": 200}}
{"custom_id": "req-00003", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Hello, who are you? (id=3)"}], "temperature": 0.7, "max_tokens": 200}}
"""

# vLLM tests/entrypoints/openai/test_run_batch.py (a blank line after request-2, no final newline)
VLLM_INPUT_BATCH = """{"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "NousResearch/Meta-Llama-3-8B-Instruct", "messages": [{"role": "system", "content": "You are a helpful assistant."},{"role": "user", "content": "Hello world!"}],"max_tokens": 1000}}
{"custom_id": "request-2", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "NousResearch/Meta-Llama-3-8B-Instruct", "messages": [{"role": "system", "content": "You are an unhelpful assistant."},{"role": "user", "content": "Hello world!"}],"max_tokens": 1000}}

{"custom_id": "request-3", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "NonExistModel", "messages": [{"role": "system", "content": "You are an unhelpful assistant."},{"role": "user", "content": "Hello world!"}],"max_tokens": 1000}}
{"custom_id": "request-4", "method": "POST", "url": "/bad_url", "body": {"model": "NousResearch/Meta-Llama-3-8B-Instruct", "messages": [{"role": "system", "content": "You are an unhelpful assistant."},{"role": "user", "content": "Hello world!"}],"max_tokens": 1000}}
{"custom_id": "request-5", "method": "POST", "url": "/v1/chat/completions", "body": {"stream": "True", "model": "NousResearch/Meta-Llama-3-8B-Instruct", "messages": [{"role": "system", "content": "You are an unhelpful assistant."},{"role": "user", "content": "Hello world!"}],"max_tokens": 1000}}"""


class BatchResponseData(BaseModel):
    """FastDeploy's and vLLM's (same fields)."""

    status_code: int = 200
    request_id: str
    body: Any | None = None


class BatchRequestOutput(BaseModel):
    """FastDeploy's and vLLM's (same fields): custom_id is a required string."""

    id: str
    custom_id: str
    response: BatchResponseData | None
    error: Any | None


def _run(tmp_path, tiny_model, data: str, *flags: str) -> list[bytes]:
    (tmp_path / "in.jsonl").write_text(data)
    out = tmp_path / "out.jsonl"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--model", tiny_model,
                      *ENGINE_FLAGS, *FIXED, *flags) == 0
    return out.read_bytes().splitlines()


def _validated(raw: bytes) -> BatchRequestOutput:
    line = BatchRequestOutput.model_validate_json(raw)
    if line.response.status_code == 200:
        ChatCompletion.model_validate(line.response.body, strict=True)
    return line


def test_fastdeploy_input_batch(tmp_path, tiny_model):
    lines = [_validated(x) for x in _run(tmp_path, tiny_model, FASTDEPLOY_INPUT_BATCH)]
    assert [x.custom_id for x in lines] == ["req-00001", "req-00002", "req-00003"]
    assert all(x.response.status_code == 200 and x.error is None for x in lines)
    assert {x.response.body["model"] for x in lines} == {tiny_model.name}  # the directory's name


def test_vllm_input_batch(tmp_path, tiny_model):
    served = "NousResearch/Meta-Llama-3-8B-Instruct"
    lines = [_validated(x) for x in _run(tmp_path, tiny_model, VLLM_INPUT_BATCH, "--served-model-name", served)]
    assert [x.custom_id for x in lines] == [f"request-{i}" for i in range(1, 6)]
    assert [x.response.status_code for x in lines] == [200, 200, 404, 400, 400]
    assert [x.error["code"] if x.error else None for x in lines] == [
        None, None, "model_not_found", "unknown_url", "unsupported_field"]
    assert all(x.response.body["model"] == served for x in lines[:2])
    # max_tokens 1000 does not fit a 256-token context: cut there, and said so
    assert all(x.response.body["choices"][0]["finish_reason"] == "length" for x in lines[:2])
    assert "body.stream" in lines[4].error["message"]


def test_openai_sdk_completion_type(tmp_path, tiny_model):
    from openai.types import CompletionCreateParams  # noqa: F401  (the request type exists)

    data = ('{"custom_id": "c", "method": "POST", "url": "/v1/completions", "body": '
            '{"model": "tiny", "prompt": ["Hello"], "n": 2, "max_tokens": null, "echo": null, "logprobs": null, '
            '"stream": null, "suffix": null, "best_of": null, "user": "u"}}\n')
    [raw] = _run(tmp_path, tiny_model, data, "--served-model-name", "tiny")
    body = Completion.model_validate(BatchRequestOutput.model_validate_json(raw).response.body, strict=True)
    assert [c.index for c in body.choices] == [0, 1]
    assert body.usage.completion_tokens <= 2 * 16  # OpenAI's default max_tokens
    assert body.model == "tiny"
