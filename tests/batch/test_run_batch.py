"""`worker run-batch` end to end with the real engine and the bundled tiny model."""

import json

import pytest

from tests.batch.conftest import ENGINE_FLAGS, FIXED, read_jsonl, request, worker_cli

# The reference page's example input and (first) output line, verbatim.
REFERENCE_INPUT = (
    '{"custom_id": "req-00001", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Tell me a fun fact. (id=1)"}], "temperature": 0.7, "max_tokens": 50}}\n'
    '{"custom_id": "req-00002", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "What\'s the weather like today? (id=2)"}], "temperature": 0.7, "max_tokens": 50}}\n'
)
REFERENCE_OUTPUT = '{"id":"fastdeploy-84601f40de3e48aeb3fe4d2ca328c32e","custom_id":"req-00001","response":{"status_code":200,"request_id":"fastdeploy-batch-0c18b71f5349453eaf00ae04659a21a0","body":{"id":"chatcmpl-024e9267-3d44-4594-91da-b5033c856da9","object":"chat.completion","created":1761203881,"model":"/root/PaddlePaddle/ERNIE-4.5-0.3B-Paddle","choices":[{"index":0,"message":{"role":"assistant","content":"Here\'s a fun fact","multimodal_content":null,"reasoning_content":null,"tool_calls":null,"prompt_token_ids":null,"completion_token_ids":null,"prompt_tokens":null,"completion_tokens":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":18,"total_tokens":68,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":0}}}},"error":null}'


def _shape(value):
    """Keys (in order), nesting and value types: what must match the reference."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}, list(value)
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_reference_example_matches_the_reference_shape(tmp_path, tiny_model):
    from worker.tokenizer import Tokenizer

    (tmp_path / "in.jsonl").write_text(REFERENCE_INPUT)
    out = tmp_path / "out.jsonl"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--model", tiny_model,
                      *ENGINE_FLAGS, *FIXED) == 0
    raw = out.read_bytes().splitlines()
    lines = [json.loads(x) for x in raw]
    assert [x["custom_id"] for x in lines] == ["req-00001", "req-00002"]
    assert all(_shape(x) == _shape(json.loads(REFERENCE_OUTPUT)) for x in lines)
    assert all(r == json.dumps(x, separators=(",", ":"), ensure_ascii=False).encode() for r, x in zip(raw, lines))
    tok = Tokenizer.from_pretrained(str(tiny_model))
    for x, content in zip(lines, ["Tell me a fun fact. (id=1)", "What's the weather like today? (id=2)"]):
        body = x["response"]["body"]
        usage, choice = body["usage"], body["choices"][0]
        prompt = tok.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        assert usage["prompt_tokens"] == len(tok.encode(prompt))
        assert 1 <= usage["completion_tokens"] <= 50
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert choice["finish_reason"] == ("length" if usage["completion_tokens"] == 50 else "stop")
        assert body["created"] == 1761203881 and body["model"] == tiny_model.name  # the model directory's name


def test_greedy_lines_match_the_offline_api(tmp_path, tiny_model):
    from worker import LLM, SamplingParams

    lines = [request("a", "Once upon a time", chat=False, temperature=0, max_tokens=12),
             request("b", "Name three colours.", temperature=0, max_tokens=9),
             request("c", "Hello", chat=False, temperature=0, max_tokens=5, n=2, seed=3),
             request("d", "Hi", temperature=0, max_tokens=4, logprobs=True, top_logprobs=2, return_token_ids=True),
             request("e", "Hi", chat=False, temperature=0, max_tokens=3, logprobs=3)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--model", tiny_model,
                      *ENGINE_FLAGS, *FIXED) == 0
    got = read_jsonl(out)
    llm = LLM(model=str(tiny_model), num_gpu_blocks_override=64, block_size=16, max_model_len=256)
    want_a = llm.generate("Once upon a time", SamplingParams(temperature=0, max_tokens=12), use_tqdm=False)[0]
    want_b = llm.chat([{"role": "user", "content": "Name three colours."}],
                      SamplingParams(temperature=0, max_tokens=9), use_tqdm=False)[0]
    assert got[0]["response"]["body"]["choices"][0]["text"] == want_a.outputs[0].text
    assert got[0]["response"]["body"]["usage"]["completion_tokens"] == len(want_a.outputs[0].token_ids)
    assert got[1]["response"]["body"]["choices"][0]["message"]["content"] == want_b.outputs[0].text
    assert [c["index"] for c in got[2]["response"]["body"]["choices"]] == [0, 1]
    d = got[3]["response"]["body"]
    content, message = d["choices"][0]["logprobs"]["content"], d["choices"][0]["message"]
    assert len(content) == len(message["completion_token_ids"]) == d["usage"]["completion_tokens"]
    assert len(message["prompt_token_ids"]) == d["usage"]["prompt_tokens"]
    assert all(len(t["top_logprobs"]) == 2 and t["logprob"] <= 0 for t in content)
    assert all(t["logprob"] >= t["top_logprobs"][1]["logprob"] for t in content)  # greedy: the top token
    e = got[4]["response"]["body"]["choices"][0]
    assert len(e["logprobs"]["tokens"]) == 3
    assert all(len(top) == 3 for top in e["logprobs"]["top_logprobs"])  # exactly as many as asked


def test_bad_lines_each_get_one_error_line(tmp_path, tiny_model):
    good = request("good-1", "Hello there", temperature=0, max_tokens=4)
    bad = [
        (b"{not json", "invalid_json"),
        (b"[1, 2, 3]", "invalid_request"),
        (b'{"method": "POST", "url": "/v1/chat/completions", "body": {}}', "missing_custom_id"),
        (good.replace("good-1", "good-2").encode(), None),
        (good.encode(), "duplicate_custom_id"),
        (request("u", "x").replace("/v1/chat/completions", "/v1/embeddings").encode(), "unknown_url"),
        (request("m", "x").replace('"POST"', '"GET"').encode(), "invalid_method"),
        (json.dumps({"custom_id": "b", "method": "POST", "url": "/v1/chat/completions",
                     "body": {"prompt": "x"}}).encode(), "invalid_body"),
        (request("t", "x", temperature=-1).encode(), "invalid_sampling_params"),
        (request("long", "word " * 400, max_tokens=2).encode(), "prompt_too_long"),
        (b'{"custom_id": "\xff\xfe", "method": "POST"}', "invalid_utf8"),
        (request("good-3", "Bye", chat=False, temperature=0, max_tokens=3).encode(), None),
    ]
    # blank lines are not requests, but they count in line numbers (as an editor shows them)
    data = b" \n\n" + b"\n".join([good.encode()] + [b for b, _ in bad]) + b"\n \t\r\n\n"
    (tmp_path / "in.jsonl").write_bytes(data)
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--model", tiny_model,
                      "--summary-file", summary, *ENGINE_FLAGS, *FIXED) == 0
    got = read_jsonl(out)
    assert len(got) == 1 + len(bad)
    for number, (line, (_, code)) in enumerate(zip(got[1:], bad), start=4):
        if code is None:
            assert line["error"] is None and line["response"]["status_code"] == 200
        else:
            assert line["error"]["code"] == code, line
            assert line["error"]["message"].startswith(f"line {number}: ")
            assert line["response"] == {"status_code": 400, "request_id": line["response"]["request_id"], "body": None}
    assert "body.temperature" in got[9]["error"]["message"] and "custom_id" in got[3]["error"]["message"]
    # no usable custom_id: still a string, derived from the line's byte offset
    assert [x["custom_id"] for x in got[1:3]] == [f"batchinfer-byte-{3 + len(good) + 1}",
                                                  f"batchinfer-byte-{3 + len(good) + 1 + len(bad[0][0]) + 1}"]
    assert all(isinstance(x["custom_id"], str) for x in got)
    s = json.loads(summary.read_text())
    assert (s["requests"], s["served"], sum(s["failed"].values())) == (13, 3, 10)
    assert s["failed"]["duplicate_custom_id"] == 1 and s["prompt_tokens"] > 0
    # the rates leave the model load out
    assert 0 < s["serving_s"] < s["elapsed_s"]
    served = [x["response"]["body"]["usage"] for x in got if x["error"] is None]
    assert s["completion_tokens"] >= sum(u["completion_tokens"] for u in served) > 0  # + the duplicate's
    # serving_s is rounded to 3 decimals, the rate is not
    rate, t = s["completion_tokens_per_s"], s["serving_s"]
    assert s["completion_tokens"] / (t + 5e-4) <= rate <= s["completion_tokens"] / max(t - 5e-4, 1e-9)


@pytest.mark.parametrize("argv,message", [
    (["-i", "/nonexistent/in.jsonl"], "input unreadable"),
    (["-o", "/proc/not-here/out.jsonl"], "output unwritable"),
    (["--chunk-lines", "0"], "--chunk-lines"),
    (["--max-num-seqs", "0"], "--max-num-seqs"),
])
def test_run_cannot_go_on_exits_nonzero(tmp_path, tiny_model, capsys, argv, message):
    (tmp_path / "in.jsonl").write_text(request("a", "x") + "\n")
    base = ["-i", tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--model", tiny_model]
    assert worker_cli("run-batch", *base, *argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_model_exits_nonzero(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text(request("a", "x") + "\n")
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", tmp_path / "o", "--model",
                      tmp_path / "no-model", "--output-tmp-dir", tmp_path / "t") == 1
    assert "model not loadable" in capsys.readouterr().err
