"""--error-file: the output holds the served lines, the error file the rejected ones, in
OpenAI's shape; together they are every request line, and a sharded run gives the same bytes."""

import json

from openai.types.shared import ErrorObject

from tests.batch.conftest import ENGINE_FLAGS, FIXED, read_jsonl, request, worker_cli
from tests.batch.test_seed_inputs import BatchRequestOutput

EXACT = [*ENGINE_FLAGS, "--no-enable-prefix-caching", *FIXED, "--served-model-name", "tiny"]
LINES = [
    request("ok-1", "Hello", temperature=0, max_tokens=2),
    "{not json",
    request("bad-role", "x").replace('"user"', '"wizard"'),
    "",
    request("ok-2", "Bye", chat=False, temperature=0, max_tokens=2),
    request("ok-1", "again", temperature=0, max_tokens=2),
    request("bias", "x", logit_bias={"1": 3}),
    request("other-model", "x", model="gpt-4o"),
]


def _run(tmp_path, *extra) -> None:
    (tmp_path / "in.jsonl").write_text("\n".join(LINES) + "\n")
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--model",
                      *extra[:1], *EXACT, *extra[1:]) == 0


def test_served_and_rejected_lines_go_to_their_files(tmp_path, tiny_model):
    _run(tmp_path, tiny_model, "--error-file", tmp_path / "errors.jsonl")
    out, errors = read_jsonl(tmp_path / "out.jsonl"), read_jsonl(tmp_path / "errors.jsonl")
    assert [x["custom_id"] for x in out] == ["ok-1", "ok-2"]
    not_json_id = f"batchinfer-byte-{len(LINES[0]) + 1}"
    assert [x["custom_id"] for x in errors] == [not_json_id, "bad-role", "ok-1", "bias", "other-model"]
    for name in ("out.jsonl", "errors.jsonl"):
        for raw in (tmp_path / name).read_bytes().splitlines():
            BatchRequestOutput.model_validate_json(raw)
    not_json, *rejected = errors
    assert not_json["response"] is None and not_json["error"]["code"] == "invalid_json"
    assert [x["response"]["status_code"] for x in rejected] == [400, 400, 400, 404]
    objs = [ErrorObject.model_validate(x["response"]["body"]["error"], strict=True) for x in rejected]
    assert all(x["error"] is None for x in rejected)
    assert [(o.code, o.param, o.type) for o in objs] == [
        ("invalid_body", "body.messages.0.role", "invalid_request_error"),
        ("duplicate_custom_id", "custom_id", "invalid_request_error"),
        ("unsupported_field", "body.logit_bias", "invalid_request_error"),
        ("model_not_found", "body.model", "invalid_request_error")]
    assert objs[0].message.startswith("line 3: body.messages.0.role: ")


def test_the_cookbook_loop_reads_both_files(tmp_path, tiny_model):
    _run(tmp_path, tiny_model, "--error-file", tmp_path / "errors.jsonl")
    answers, failures = {}, {}
    for name in ("out.jsonl", "errors.jsonl"):
        for line in (tmp_path / name).read_text().splitlines():
            res = json.loads(line.strip())
            if res["error"] is not None:
                failures[res["custom_id"]] = res["error"]["message"]
            elif res["response"]["status_code"] != 200:
                failures[res["custom_id"]] = res["response"]["body"]["error"]["message"]
            else:
                body = res["response"]["body"]
                answers[res["custom_id"]] = body["choices"][0].get("message", body["choices"][0])
    assert set(answers) == {"ok-1", "ok-2"} and len(failures) == 5


def test_inline_by_default_and_sharded_error_files_are_the_same_bytes(tmp_path, tiny_model):
    _run(tmp_path, tiny_model)
    inline = read_jsonl(tmp_path / "out.jsonl")
    assert len(inline) == 7 and inline[1]["response"]["body"] is None  # FastDeploy-style error lines
    _run(tmp_path, tiny_model, "--error-file", tmp_path / "errors.jsonl")
    staging = tmp_path / "staging"
    for i in range(3):
        assert worker_cli("run-shard", "--input", tmp_path / "in.jsonl", "--staging", staging, "--shard-index", i,
                          "--num-shards", 3, "--model", tiny_model, "--termination-message-path", tmp_path / "t",
                          "--chunk-lines", 2, *EXACT) == 0
    assert worker_cli("gather", "--staging", staging, "--num-shards", 3, "--output", tmp_path / "g-out.jsonl",
                      "--error-file", tmp_path / "g-errors.jsonl") == 0
    assert (tmp_path / "g-out.jsonl").read_bytes() == (tmp_path / "out.jsonl").read_bytes()
    assert (tmp_path / "g-errors.jsonl").read_bytes() == (tmp_path / "errors.jsonl").read_bytes()
