"""Tool calls in chat lines: OpenAI's `tools` + `tool_choice` -> a JSON-schema constraint on the
output, and the output -> `message.tool_calls`.

- `tool_choice: "required"`: the output is one call `{"name": N, "arguments": {...}}` of any
  of the tools, its arguments matching that function's `parameters`; a named function
  (`{"type": "function", "function": {"name": N}}`): a call of that one.
- `"none"`: the tools are ignored (not constrained, not shown to the template).
- `"auto"` (OpenAI's default when tools are given) is refused: it needs the model's own
  tool-call format, which we do not parse yet.
The tools are passed to the chat template as `tools` (templates that know them render them).
One call per choice, which `parallel_tool_calls` true or false both allow.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from worker.batch import errors as E
from worker.batch.errors import LineError


class FunctionDef(BaseModel):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class Tool(BaseModel):
    type: Literal["function"]
    function: FunctionDef


class FunctionName(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: FunctionName


class ToolsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None


@dataclass(frozen=True)
class ToolCalling:
    tools: list[dict[str, Any]]  # as the chat template reads them
    schema: dict[str, Any]  # what the output must be: one call


def tool_calling(body: ToolsBody, chat: bool) -> ToolCalling | None:
    """The constraint the line's tools ask for, or None (no tools, or tool_choice "none")."""
    if not body.tools:
        if body.tool_choice not in (None, "none"):
            raise LineError(E.INVALID_BODY, "needs a non-empty tools list", "body.tool_choice")
        return None
    if not chat:
        raise LineError(E.UNSUPPORTED_FIELD, "tools are served on /v1/chat/completions only", "body.tools")
    choice = body.tool_choice
    if choice == "none":
        return None
    if choice in (None, "auto"):
        raise LineError(E.UNSUPPORTED_FIELD, '"auto" (the default with tools) is not supported yet: we do not '
                        'parse model-chosen tool calls; set "required", a named function, or "none"',
                        "body.tool_choice")
    tools = body.tools
    if isinstance(choice, NamedToolChoice):
        tools = [t for t in body.tools if t.function.name == choice.function.name]
        if not tools:
            raise LineError(E.INVALID_BODY, f"names {choice.function.name!r}, which is not in tools",
                            "body.tool_choice.function.name")
    calls = [_call_schema(t.function) for t in tools]
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    return ToolCalling(tools=[t.model_dump(exclude_none=True) for t in body.tools], schema=schema)


def _call_schema(function: FunctionDef) -> dict[str, Any]:
    arguments = function.parameters if function.parameters is not None else {"type": "object"}
    return {"type": "object", "properties": {"name": {"const": function.name}, "arguments": arguments},
            "required": ["name", "arguments"], "additionalProperties": False}


def tool_calls(text: str, custom_id: str, index: int) -> list[dict[str, Any]]:
    """The one call a complete constrained output holds, as OpenAI's `message.tool_calls`. Its
    id is derived from the line and the choice, so reruns write the same bytes."""
    call = json.loads(text)
    call_id = "call_" + hashlib.sha256(f"{custom_id}\n{index}".encode()).hexdigest()[:24]
    arguments = json.dumps(call["arguments"], ensure_ascii=False, separators=(",", ":"))
    return [{"id": call_id, "type": "function", "function": {"name": call["name"], "arguments": arguments}}]
