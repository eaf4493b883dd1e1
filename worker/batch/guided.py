"""Structured outputs in a batch body -> `SamplingParams.guided_decoding`.

Spellings taken, at most one per line:
- OpenAI's `response_format`: `{"type": "text"}` (nothing), `{"type": "json_object"}`,
  `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`. The schema is
  enforced whatever `strict` says: a constraint we were given is never relaxed.
- FastDeploy's `guided_json`, `guided_regex`, `guided_choice`, `guided_grammar`;
- vLLM's `structured_outputs: {json | regex | choice | grammar | json_object}`.
An invalid schema, regex or grammar is an `invalid_sampling_params` line naming the body field.
"""

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from worker.batch import errors as E
from worker.batch.errors import LineError
from worker.guided_decoding import GuidedDecodingError, GuidedDecodingParams
from worker.sampling_params import SamplingParams


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: StrictBool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StructuredOutputs(BaseModel):
    """vLLM's spelling: the same fields as GuidedDecodingParams."""

    model_config = ConfigDict(extra="forbid")

    json_: dict[str, Any] | str | None = Field(None, alias="json")
    json_object: StrictBool | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None


class GuidedBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    response_format: ResponseFormat | None = None
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    structured_outputs: StructuredOutputs | None = None


# FastDeploy's body fields -> the GuidedDecodingParams field each one sets.
_FASTDEPLOY = {"guided_json": "json", "guided_regex": "regex", "guided_choice": "choice", "guided_grammar": "grammar"}


def with_guided_decoding(params: SamplingParams, body: GuidedBody,
                         tool_schema: dict[str, Any] | None = None) -> SamplingParams:
    """`params` constrained as the body asks (unchanged when it asks nothing); `tool_schema`:
    the call that `tools` + `tool_choice` require (worker.batch.tools)."""
    found = _constraints(body) + ([("tools", "json", tool_schema)] if tool_schema is not None else [])
    if not found:
        return params
    if len(found) > 1:
        names = ", ".join(f"body.{where}" for where, _, _ in found)
        raise LineError(E.INVALID_SAMPLING_PARAMS, f"give one structured-output constraint, got {names}",
                        f"body.{found[1][0]}")
    where, kind, value = found[0]
    try:
        guided = GuidedDecodingParams(**{kind: value})
        return dataclasses.replace(params, guided_decoding=guided)
    except GuidedDecodingError as exc:
        message = str(exc).removeprefix(f"guided_decoding.{kind}").removeprefix(":").strip()
        raise LineError(E.INVALID_SAMPLING_PARAMS, message, f"body.{where}") from None
    except ValueError as exc:  # a combination SamplingParams refuses (ignore_eos)
        raise LineError(E.INVALID_SAMPLING_PARAMS, str(exc), f"body.{where}") from None


def _constraints(body: GuidedBody) -> list[tuple[str, str, Any]]:
    """(body field, GuidedDecodingParams field, value) of every constraint the body sets."""
    found = []
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_object":
        found.append(("response_format", "json_object", True))
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise LineError(E.INVALID_BODY, "is required when type is json_schema", "body.response_format.json_schema")
        found.append(("response_format.json_schema.schema", "json", fmt.json_schema.schema_))
    for name, kind in _FASTDEPLOY.items():
        if getattr(body, name) is not None:
            found.append((name, kind, getattr(body, name)))
    if body.structured_outputs is not None:
        for name, value in body.structured_outputs.model_dump(by_alias=True).items():
            if value not in (None, False):
                found.append((f"structured_outputs.{name}", name, value))
    return found
