"""Structured outputs in batch lines: OpenAI's response_format, FastDeploy's guided_* and vLLM's
structured_outputs map onto SamplingParams.guided_decoding; bad ones are 400 lines naming the
field; `worker run-batch` on the tiny model gives outputs that validate."""

import json
import re

import jsonschema
import pytest

from tests.batch.conftest import ENGINE_FLAGS, FIXED, read_jsonl, request, worker_cli
from worker.batch import errors as E
from worker.batch.errors import LineError
from worker.batch.parse import parse_line

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
          "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["city", "zip"],
          "additionalProperties": False}


def _chat(**body) -> bytes:
    return request("c1", "hi", **body).encode()


def _guided(data: bytes):
    return parse_line(data).params.guided_decoding


@pytest.mark.parametrize("body, kind, value", [
    (dict(response_format={"type": "json_object"}), "json_object", True),
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}}),
     "json", SCHEMA),
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": False}}),
     "json", SCHEMA),  # a schema we were given is enforced, strict or not
    (dict(guided_json=SCHEMA), "json", SCHEMA),
    (dict(guided_json=json.dumps(SCHEMA)), "json", json.dumps(SCHEMA)),
    (dict(guided_regex="[a-z]+"), "regex", "[a-z]+"),
    (dict(guided_choice=["yes", "no"]), "choice", ["yes", "no"]),
    (dict(guided_grammar='root ::= "a" | "b"'), "grammar", 'root ::= "a" | "b"'),
    (dict(structured_outputs={"json": SCHEMA}), "json", SCHEMA),
    (dict(structured_outputs={"choice": ["x", "y"]}), "choice", ["x", "y"]),
    (dict(structured_outputs={"json_object": True}), "json_object", True),
])
def test_each_spelling_maps_onto_guided_decoding(body, kind, value):
    guided = _guided(_chat(**body))
    assert guided.kind == kind and getattr(guided, kind) == value


def test_completions_take_it_too_and_text_or_null_asks_nothing():
    assert _guided(request("c", "x", chat=False, guided_regex="[0-9]+").encode()).regex == "[0-9]+"
    assert _guided(_chat(response_format={"type": "text"})) is None
    assert _guided(_chat(response_format=None, guided_json=None)) is None


@pytest.mark.parametrize("body, code, field, what", [
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "bogus"}}}),
     E.INVALID_SAMPLING_PARAMS, "body.response_format.json_schema.schema", "bogus"),
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "a"}}),
     E.INVALID_BODY, "body.response_format.json_schema.schema", "required"),
    (dict(response_format={"type": "json_schema"}), E.INVALID_BODY, "body.response_format.json_schema", "required"),
    (dict(response_format={"type": "yaml"}), E.INVALID_BODY, "body.response_format.type", "json_schema"),
    (dict(guided_regex="a(b"), E.INVALID_SAMPLING_PARAMS, "body.guided_regex", "unclosed group"),
    (dict(guided_json='{"type":'), E.INVALID_SAMPLING_PARAMS, "body.guided_json", "not valid JSON"),
    (dict(guided_choice=[]), E.INVALID_SAMPLING_PARAMS, "body.guided_choice", "non-empty"),
    (dict(guided_choice="yes"), E.INVALID_BODY, "body.guided_choice", "list"),
    (dict(guided_grammar="root ::= (("), E.INVALID_SAMPLING_PARAMS, "body.guided_grammar", "invalid grammar"),
    (dict(structured_outputs={"regex": "["}), E.INVALID_SAMPLING_PARAMS, "body.structured_outputs.regex", "regex"),
    (dict(structured_outputs={"pattern": "x"}), E.INVALID_BODY, "body.structured_outputs.pattern", "Extra"),
    (dict(guided_regex="a", guided_choice=["a"]), E.INVALID_SAMPLING_PARAMS, "body.guided_choice", "give one"),
    (dict(response_format={"type": "json_object"}, guided_json=SCHEMA), E.INVALID_SAMPLING_PARAMS,
     "body.guided_json", "give one"),
    (dict(guided_regex="a+", ignore_eos=True), E.INVALID_SAMPLING_PARAMS, "body.guided_regex", "ignore_eos"),
])
def test_a_bad_constraint_is_a_400_naming_the_field(body, code, field, what):
    with pytest.raises(LineError) as info:
        parse_line(_chat(**body))
    assert (info.value.code, info.value.field, info.value.status) == (code, field, 400)
    assert what in info.value.detail


def test_run_batch_outputs_validate(tmp_path, tiny_model):
    from tests.e2e.test_guided_generation import CHOICES, REGEXES, SCHEMAS

    lines = [request(f"s{i}", f"JSON {i}", seed=i, max_tokens=128, response_format={"type": "json_schema",
                     "json_schema": {"name": f"schema{i}", "schema": schema, "strict": True}})
             for i, schema in enumerate(SCHEMAS)]
    lines += [request(f"r{i}", "Code?", chat=False, temperature=0, max_tokens=48, guided_regex=rx)
              for i, rx in enumerate(REGEXES)]
    lines += [request(f"c{i}", "Mood?", temperature=1.0, seed=i, guided_choice=CHOICES) for i in range(4)]
    lines += [request("bad", "x", guided_regex="a(b"), request("free", "Hello", temperature=0, max_tokens=5)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--model", tiny_model,
                      *ENGINE_FLAGS, *FIXED) == 0
    results = {x["custom_id"]: x for x in read_jsonl(out)}
    assert len(results) == len(lines)

    def choice(cid):
        return results[cid]["response"]["body"]["choices"][0]

    stopped = [(choice(f"s{i}"), schema) for i, schema in enumerate(SCHEMAS) if choice(f"s{i}")["finish_reason"] == "stop"]
    assert len(stopped) >= len(SCHEMAS) - 2  # unbounded numbers may run on in random digits
    for c, schema in stopped:
        jsonschema.validate(json.loads(c["message"]["content"]), schema)
    for i, rx in enumerate(REGEXES):
        assert re.fullmatch(rx, choice(f"r{i}")["text"]) and choice(f"r{i}")["finish_reason"] == "stop"
    assert all(choice(f"c{i}")["message"]["content"] in CHOICES for i in range(4))
    assert results["bad"]["error"]["code"] == E.INVALID_SAMPLING_PARAMS
    assert results["bad"]["error"]["message"].startswith(f"line {len(lines) - 1}: body.guided_regex: ")
    assert choice("free")["finish_reason"] == "length"
