"""Hostile input lines for run-batch and run-shard: each with the error code its output line
must carry (None: served). Built as bytes, so nothing here is re-encoded on the way."""

import json


def req(cid, body: dict | None = None, chat: bool = True, **top) -> bytes:
    base = {"messages": [{"role": "user", "content": "Hello"}]} if chat else {"prompt": "Hello"}
    body = base | {"max_tokens": 2, "temperature": 0} | (body or {})
    obj = {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions" if chat else "/v1/completions",
           "body": body} | top
    return json.dumps(obj).encode()


def nested(depth: int) -> bytes:
    return b'{"custom_id":"deep","method":"POST","url":"/v1/completions","body":{"prompt":"a","x":' + \
        b"[" * depth + b"]" * depth + b"}}"


# Blank and whitespace-only lines are not requests: they yield no output line (FastDeploy, vLLM).
BLANK = "no output line"
# (name, line, expected error code, None when served, or BLANK)
LINES: list[tuple[str, bytes, str | None]] = [
    ("plain", req("ok-1"), None),
    ("invalid utf-8", b'{"custom_id": "u\xff\xfe", "method": "POST"}', "invalid_utf8"),
    ("invalid utf-8 in content", req("u2").replace(b"Hello", b"He\xc3\x28llo"), "invalid_utf8"),
    ("nested 100000 deep", nested(100_000), "invalid_json"),
    ("nested 5000 deep", nested(5000), "invalid_json"),
    ("nested 200 deep (fine)", nested(200).replace(b'"deep"', b'"deep-ok"'), None),
    ("byte-order mark", b"\xef\xbb\xbf" + req("bom"), None),
    ("CR before LF", req("crlf") + b"\r", None),
    ("blank", b"", BLANK),
    ("only spaces and CR", b"  \t \r", BLANK),
    ("NaN", req("nan").replace(b'"temperature": 0', b'"temperature": NaN'), "invalid_json"),
    ("Infinity", req("inf").replace(b'"temperature": 0', b'"temperature": -Infinity'), "invalid_json"),
    ("1e999", req("big-float").replace(b'"temperature": 0', b'"temperature": 1e999'), "invalid_json"),
    ("custom_id a number", req(12345), "missing_custom_id"),
    ("custom_id null", req(None), "missing_custom_id"),
    ("content a number", req("c-num", {"messages": [{"role": "user", "content": 42}]}), "invalid_body"),
    ("content an object", req("c-obj", {"messages": [{"role": "user", "content": {"a": 1}}]}), "invalid_body"),
    ("content parts not text", req("c-img", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]}), "invalid_body"),
    ("role a number", req("r-num", {"messages": [{"role": 7, "content": "x"}]}), "invalid_body"),
    ("unknown role", req("r-wiz", {"messages": [{"role": "wizard", "content": "x"}]}), "invalid_body"),
    ("no messages", req("no-msg", {"messages": []}), "invalid_body"),
    ("prompt a number", req("p-num", {"prompt": 3.5}, chat=False), "invalid_body"),
    ("stop a number", req("stop-num", {"stop": 5}), "invalid_body"),
    ("max_tokens 10**30", req("mt-huge", {"max_tokens": 10**30}, chat=False), None),
    ("max_tokens -5", req("mt-neg", {"max_tokens": -5}), "invalid_sampling_params"),
    ("max_tokens 0", req("mt-zero", {"max_tokens": 0}), "invalid_sampling_params"),
    ("max_tokens a string", req("mt-str", {"max_tokens": "10"}), "invalid_body"),
    ("temperature a word", req("t-word", {"temperature": "hot"}), "invalid_body"),
    # numeric strings are numbers to pydantic, as in FastDeploy's own request models
    ("temperature a numeric string", req("t-num-str", {"temperature": "0"}), None),
    ("temperature negative", req("t-neg", {"temperature": -1}), "invalid_sampling_params"),
    ("unknown fields", req("unknown", {"frobnicate": {"a": [1]}}, extra_top="x"), None),
    ("a model not served", req("gpt-9", {"model": "gpt-9"}), "model_not_found"),
    ("n 1000", req("n-1000", {"n": 1000, "max_tokens": 1}, chat=False), None),
    ("n 0", req("n-0", {"n": 0}), "invalid_sampling_params"),
    ("n a float", req("n-float", {"n": 2.5}), "invalid_body"),
    ("seed negative", req("seed-neg", {"seed": -1}), "invalid_sampling_params"),
    ("token id out of vocab", req("tok-oov", {"prompt": [10**12]}, chat=False), "invalid_body"),
    ("body a list", req("b-list").replace(b'"body": {', b'"body": [{').replace(b"}}", b"}]}"), "invalid_body"),
    ("a JSON string", b'"just a string"', "invalid_request"),
    ("a JSON number", b"17", "invalid_request"),
    ("truncated", req("trunc")[:-7], "invalid_json"),
    ("method GET", req("get", method="GET"), "invalid_method"),
    ("url embeddings", req("emb", url="/v1/embeddings"), "unknown_url"),
    ("stream true", req("stream", {"stream": True}), "unsupported_field"),
    ("NUL bytes", b"\x00\x00\x00", "invalid_json"),
    ("duplicate of plain", req("ok-1"), "duplicate_custom_id"),
    ("plain last", req("ok-2", chat=False), None),
]
