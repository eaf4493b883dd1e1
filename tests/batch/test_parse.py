"""Input lines -> requests or typed errors naming the field; OpenAI bodies -> SamplingParams."""

import json

import pytest

from worker.batch import errors as E
from worker.batch.errors import LineError
from worker.batch.parse import parse_line


def _line(body=None, **overrides) -> bytes:
    obj = {"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions",
           "body": body if body is not None else {"messages": [{"role": "user", "content": "hi"}]}}
    obj.update(overrides)
    return json.dumps(obj).encode()


@pytest.mark.parametrize("data,code,field", [
    (b"", E.EMPTY_LINE, None),
    (b"  \r", E.EMPTY_LINE, None),
    (b"{\"custom_id\": \"\xff\"}", E.INVALID_UTF8, None),
    (b"{not json", E.INVALID_JSON, None),
    (b"[1, 2]", E.INVALID_REQUEST, None),
    (b'{"method": "POST"}', E.MISSING_CUSTOM_ID, "custom_id"),
    (b'{"custom_id": 5}', E.MISSING_CUSTOM_ID, "custom_id"),
    (_line(method="GET"), E.INVALID_METHOD, "method"),
    (_line(url="/v1/embeddings"), E.UNKNOWN_URL, "url"),
    (_line(body=[]), E.INVALID_BODY, "body"),
    (_line(body={"prompt": "x"}), E.INVALID_BODY, "body.messages"),
    (_line(url="/v1/completions", body={"messages": []}), E.INVALID_BODY, "body.prompt"),
    (_line(body={"messages": [{"role": "user", "content": "x"}], "temperature": -1}),
     E.INVALID_SAMPLING_PARAMS, "body.temperature"),
    (_line(body={"messages": [{"role": "user", "content": "x"}], "top_p": 1.5}),
     E.INVALID_SAMPLING_PARAMS, "body.top_p"),
    (_line(body={"messages": [{"role": "user", "content": "x"}], "n": 0}), E.INVALID_SAMPLING_PARAMS, "body.n"),
    (_line(body={"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}),
     E.INVALID_SAMPLING_PARAMS, "body.top_logprobs"),
    (_line(body={"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 99}),
     E.INVALID_SAMPLING_PARAMS, "body.top_logprobs"),
    (_line(body={"messages": [{"role": "user", "content": "x"}], "stream": True}), E.INVALID_BODY, "body.stream"),
])
def test_bad_lines_name_the_problem(data, code, field):
    with pytest.raises(LineError) as info:
        parse_line(data)
    assert info.value.code == code
    assert info.value.field == field
    if field:
        assert info.value.detail.startswith(field)


def test_custom_id_survives_a_later_error():
    with pytest.raises(LineError) as info:
        parse_line(_line(url="/nope"))
    assert info.value.custom_id == "c1"


def test_chat_body_maps_onto_sampling_params():
    req = parse_line(_line(body={
        "messages": [{"role": "user", "content": "x"}], "n": 2, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
        "seed": 3, "stop": "END", "presence_penalty": 0.1, "frequency_penalty": 0.2, "repetition_penalty": 1.1,
        "max_tokens": 100, "max_completion_tokens": 7, "logprobs": True, "top_logprobs": 2, "model": "ignored"}))
    p = req.params
    assert req.chat and req.custom_id == "c1"
    assert (p.n, p.temperature, p.top_p, p.top_k, p.seed, p.stop) == (2, 0.5, 0.9, 5, 3, ["END"])
    assert (p.presence_penalty, p.frequency_penalty, p.repetition_penalty) == (0.1, 0.2, 1.1)
    assert p.max_tokens == 7  # max_completion_tokens wins over the deprecated max_tokens
    assert p.logprobs == 2


def test_completion_body_maps_onto_sampling_params():
    req = parse_line(_line(url="/v1/completions", body={"prompt": [1, 2, 3], "max_tokens": 4, "logprobs": 1,
                                                         "min_tokens": 2, "stop_token_ids": [9]}))
    assert not req.chat and req.body.prompt == [1, 2, 3]
    assert (req.params.max_tokens, req.params.logprobs, req.params.min_tokens) == (4, 1, 2)
    assert req.params.stop_token_ids == [9]
