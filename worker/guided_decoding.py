"""What a guided (constrained) generation must match: FastDeploy's and vLLM's
`GuidedDecodingParams`, exactly one of a JSON schema, any JSON object, a regex, a list of
choices or a grammar (Lark, or GBNF/EBNF as FastDeploy's `guided_grammar` writes it).

Validated at construction by compiling it with llguidance (no tokenizer needed), so a bad
schema, regex or grammar is a `GuidedDecodingError` naming the field here, never a failure
inside the engine. `grammar` is llguidance's grammar text, what the engine's matchers take.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import llguidance
from llguidance.gbnf_to_lark import GbnfToLarkError, any_to_lark

KINDS = ("json", "json_object", "regex", "choice", "grammar")
# Compact JSON (no whitespace between tokens): fewer tokens a line, and a model cannot wander
# off into whitespace. A schema's "x-guidance" options override it (llguidance's rule).
_JSON_OPTIONS = {"whitespace_flexible": False}


class GuidedDecodingError(ValueError):
    """A guided-decoding constraint that is malformed or cannot be compiled; says which field."""


@dataclass
class GuidedDecodingParams:
    json: str | dict[str, Any] | None = None  # a JSON schema, as a dict or its JSON text
    json_object: bool = False  # any JSON object (OpenAI's response_format json_object)
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None  # Lark, or GBNF/EBNF ("root ::= ...")
    compiled: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        kind = self.kind
        self.compiled = _checked(f"guided_decoding.{kind}", _compile(kind, getattr(self, kind)))

    @property
    def kind(self) -> str:
        given = [k for k in KINDS if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise GuidedDecodingError(
                f"guided_decoding must set exactly one of {', '.join(KINDS)}; got {given or 'none'}"
            )
        return given[0]


def _compile(kind: str, value: Any) -> str:
    where = f"guided_decoding.{kind}"
    if kind == "json":
        return llguidance.LLMatcher.grammar_from_json_schema(_schema(where, value), defaults=_JSON_OPTIONS)
    if kind == "json_object":
        if value is not True:
            raise GuidedDecodingError(f"{where} must be a bool, got {value!r}")
        return llguidance.LLMatcher.grammar_from_json_schema({"type": "object"}, defaults=_JSON_OPTIONS)
    if kind == "regex":
        return llguidance.LLMatcher.grammar_from_regex(_text(where, value))
    if kind == "choice":
        return llguidance.LLMatcher.grammar_from_lark(_choice_lark(where, value))
    try:
        return llguidance.LLMatcher.grammar_from_lark(any_to_lark(_text(where, value)))
    except (GbnfToLarkError, ValueError) as e:  # the GBNF converter's syntax errors
        raise GuidedDecodingError(f"{where}: invalid grammar: {e}") from e


def _schema(where: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise GuidedDecodingError(f"{where}: not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise GuidedDecodingError(f"{where} must be a JSON schema object, got {type(value).__name__}")
    return value


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise GuidedDecodingError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _choice_lark(where: str, value: Any) -> str:
    if not isinstance(value, (list, tuple)) or not value:
        raise GuidedDecodingError(f"{where} must be a non-empty list of strings, got {value!r}")
    if not all(isinstance(c, str) and c for c in value):
        raise GuidedDecodingError(f"{where} must hold non-empty strings, got {value!r}")
    # Lark string literals take JSON's escapes, so json.dumps quotes any choice exactly.
    return "start: " + " | ".join(json.dumps(c) for c in value)


def _checked(where: str, grammar: str) -> str:
    error = llguidance.LLMatcher.validate_grammar(grammar)
    if error:
        raise GuidedDecodingError(f"{where}: {error.strip()}")
    return grammar
