"""Tool calls in chat lines: tool_choice "required" or a named function constrain the output
to one call whose arguments match the function's parameters, returned as message.tool_calls."""

import json

import jsonschema
import openai.types.chat
import pytest

from tests.batch.conftest import ENGINE_FLAGS, FIXED, read_jsonl, request, worker_cli
from worker.batch import errors as E
from worker.batch.errors import LineError
from worker.batch.parse import parse_line
from worker.batch.prepare import build_prompts
from worker.tokenizer import Tokenizer

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
           "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"], "additionalProperties": False}
SUM = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
       "b": {"type": "integer", "minimum": 0, "maximum": 99}}, "required": ["a", "b"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
         {"type": "function", "function": {"name": "add", "description": "a + b", "parameters": SUM}}]
SCHEMAS = {"get_weather": WEATHER, "add": SUM}


def _chat(**body) -> bytes:
    return request("c1", "hi", **body).encode()


def test_required_allows_a_call_of_any_tool_and_a_named_choice_only_that_one():
    schema = parse_line(_chat(tools=TOOLS, tool_choice="required")).params.guided_decoding.json
    names = [alt["properties"]["name"]["const"] for alt in schema["anyOf"]]
    assert names == ["get_weather", "add"]
    named = parse_line(_chat(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "add"}}))
    assert named.params.guided_decoding.json["properties"] == {"name": {"const": "add"}, "arguments": SUM}


def test_none_ignores_the_tools():
    req = parse_line(_chat(tools=TOOLS, tool_choice="none"))
    assert req.tools is None and req.params.guided_decoding is None


@pytest.mark.parametrize("body, code, field", [
    (dict(tools=TOOLS), E.UNSUPPORTED_FIELD, "body.tool_choice"),  # "auto" is OpenAI's default
    (dict(tools=TOOLS, tool_choice="auto"), E.UNSUPPORTED_FIELD, "body.tool_choice"),
    (dict(tool_choice="required"), E.INVALID_BODY, "body.tool_choice"),
    (dict(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}), E.INVALID_BODY,
     "body.tool_choice.function.name"),
    (dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "bogus"}}}],
          tool_choice="required"), E.INVALID_SAMPLING_PARAMS, "body.tools"),
    (dict(tools=TOOLS, tool_choice="required", response_format={"type": "json_object"}),
     E.INVALID_SAMPLING_PARAMS, "body.tools"),
    (dict(tools=[{"type": "retrieval"}], tool_choice="required"), E.INVALID_BODY, "body.tools.0.type"),
])
def test_bad_tool_lines_name_the_field(body, code, field):
    with pytest.raises(LineError) as info:
        parse_line(_chat(**body))
    assert (info.value.code, info.value.field) == (code, field)


def test_completions_refuse_tools():
    with pytest.raises(LineError) as info:
        parse_line(request("c", "x", chat=False, tools=TOOLS, tool_choice="required").encode())
    assert (info.value.code, info.value.field) == (E.UNSUPPORTED_FIELD, "body.tools")


def test_the_chat_template_gets_the_tools(tiny_model, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% if tools %}TOOLS {{ tools | map(attribute='function.name') | join(',') }}\n" \
                              "{% endif %}{{ messages[0]['content'] }}"
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    tok = Tokenizer.from_pretrained(model)
    (with_tools,) = build_prompts(parse_line(_chat(tools=TOOLS, tool_choice="required")), tok, 256)
    assert with_tools.prompt == "TOOLS get_weather,add\nhi"
    (without,) = build_prompts(parse_line(_chat(tools=TOOLS, tool_choice="none")), tok, 256)
    assert without.prompt == "hi"


def test_run_batch_returns_tool_calls_that_validate(tmp_path, tiny_model):
    named = {"type": "function", "function": {"name": "add"}}
    lines = [request(f"q{i}", f"Weather or sum? {i}", seed=i, max_tokens=96, tools=TOOLS, tool_choice="required")
             for i in range(6)]
    lines += [request("named", "Add", temperature=0, max_tokens=96, tools=TOOLS, tool_choice=named),
              request("cut", "Add", temperature=0, max_tokens=3, tools=TOOLS, tool_choice=named)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert worker_cli("run-batch", "-i", tmp_path / "in.jsonl", "-o", out, "--model", tiny_model,
                      *ENGINE_FLAGS, *FIXED) == 0
    results = {x["custom_id"]: x["response"]["body"] for x in read_jsonl(out)}
    for cid in [f"q{i}" for i in range(6)] + ["named"]:
        choice = results[cid]["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None, choice
        (call,) = choice["message"]["tool_calls"]
        assert call["type"] == "function" and call["id"].startswith("call_")
        jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMAS[call["function"]["name"]])
        openai.types.chat.ChatCompletion.model_validate(results[cid])
    assert results["named"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "add"
    cut = results["cut"]["choices"][0]
    assert cut["finish_reason"] == "length" and cut["message"]["tool_calls"] is None and cut["message"]["content"]
    assert len({results[f"q{i}"]["choices"][0]["message"]["tool_calls"][0]["id"] for i in range(6)}) == 6
