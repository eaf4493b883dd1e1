"""Input lines -> requests or typed errors naming the field; OpenAI bodies -> SamplingParams."""

import json

import pytest

from tests.batch.engine_double import ByteTokenizer
from worker.batch import errors as E
from worker.batch.errors import LineError
from worker.batch.parse import parse_line
from worker.batch.prepare import build_prompts


def _line(body=None, **overrides) -> bytes:
    obj = {"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions",
           "body": body if body is not None else {"messages": [{"role": "user", "content": "hi"}]}}
    obj.update(overrides)
    return json.dumps(obj).encode()


@pytest.mark.parametrize("data,code,field", [
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


def _chat(**body) -> bytes:
    return _line(body={"messages": [{"role": "user", "content": "x"}]} | body)


def _completion(**body) -> bytes:
    return _line(url="/v1/completions", body={"prompt": "x"} | body)


@pytest.mark.parametrize("data,field", [
    (_completion(logit_bias={"50256": -100}), "body.logit_bias"),
    (_chat(logit_bias={"1": 5}), "body.logit_bias"),
    (_completion(suffix="end"), "body.suffix"),
    (_completion(best_of=3), "body.best_of"),
    (_completion(best_of=3, n=2), "body.best_of"),
    (_chat(stream=True), "body.stream"),
    (_completion(stream="True"), "body.stream"),
    (_chat(stream_options={"include_usage": True}), "body.stream_options"),
    (_chat(structural_tag={"type": "structural_tag"}), "body.structural_tag"),
    (_chat(functions=[{"name": "f"}]), "body.functions"),
    (_chat(function_call="auto"), "body.function_call"),
    (_chat(audio={"voice": "alloy"}), "body.audio"),
    (_chat(modalities=["text", "audio"]), "body.modalities"),
    (_chat(prediction={"type": "content", "content": "x"}), "body.prediction"),
    (_chat(reasoning_effort="low"), "body.reasoning_effort"),
])
def test_fields_we_do_not_implement_are_refused_by_name(data, field):
    with pytest.raises(LineError) as info:
        parse_line(data)
    assert (info.value.code, info.value.field, info.value.status) == (E.UNSUPPORTED_FIELD, field, 400)
    assert info.value.detail.startswith(field + ": ")


@pytest.mark.parametrize("data", [
    _completion(best_of=2, n=2), _completion(best_of=1), _chat(stream=False), _chat(modalities=["text"]),
    _chat(user="u", metadata={"k": "v"}, store=False, service_tier="auto"),
    _chat(logit_bias=None, tools=None, response_format=None, stream_options=None, best_of=None),
])
def test_fields_that_change_nothing_are_accepted(data):
    parse_line(data)


_NULLS = ("n", "temperature", "top_p", "stop", "max_tokens", "seed", "presence_penalty", "frequency_penalty",
          "stream", "user", "logprobs")


def test_explicit_nulls_mean_the_default():
    chat = parse_line(_chat(**dict.fromkeys(_NULLS + ("top_logprobs", "max_completion_tokens")))).params
    completion = parse_line(_completion(**dict.fromkeys(_NULLS + ("echo", "ignore_eos", "suffix")))).params
    assert (chat.n, chat.max_tokens, chat.logprobs, chat.ignore_eos) == (1, None, None, False)
    assert (completion.n, completion.logprobs, completion.ignore_eos) == (1, None, False)


def test_completions_default_to_sixteen_tokens_as_openai():
    assert parse_line(_completion()).params.max_tokens == 16
    assert parse_line(_completion(max_tokens=3)).params.max_tokens == 3
    assert parse_line(_chat()).params.max_tokens is None  # chat: until EOS or the context


@pytest.mark.parametrize("prompt,expected", [
    ("ab", [([97, 98], "body.prompt")]),
    ([5, 6], [([5, 6], "body.prompt")]),
    (["ab"], [([97, 98], "body.prompt.0")]),
    ([[5, 6]], [([5, 6], "body.prompt.0")]),
    (["a", "bc"], [([97], "body.prompt.0"), ([98, 99], "body.prompt.1")]),
    ([[1], [2, 3]], [([1], "body.prompt.0"), ([2, 3], "body.prompt.1")]),
])
def test_prompt_in_each_openai_form(prompt, expected):
    prompts = build_prompts(parse_line(_completion(prompt=prompt)), ByteTokenizer(), max_model_len=64)
    assert [(p.prompt_token_ids, p.field) for p in prompts] == expected


def test_echo_with_logprobs_asks_for_prompt_logprobs():
    assert parse_line(_completion(echo=True, logprobs=2)).params.prompt_logprobs == 2
    assert parse_line(_completion(logprobs=2)).params.prompt_logprobs is None
    assert parse_line(_completion(echo=True)).params.prompt_logprobs is None


def test_a_model_not_served_is_refused():
    models = ("tiny", "tiny-alias")
    assert parse_line(_chat(model="tiny-alias"), models).body.model == "tiny-alias"
    assert parse_line(_chat(), models).body.model is None
    with pytest.raises(LineError) as info:
        parse_line(_chat(model="gpt-4o"), models)
    assert (info.value.code, info.value.field, info.value.status) == (E.MODEL_NOT_FOUND, "body.model", 404)
    assert "'gpt-4o'" in info.value.detail and "'tiny'" in info.value.detail
