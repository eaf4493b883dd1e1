"""Body fields whose effect we do not produce: a line using one is refused naming the field,
never served as if the field were absent. A field set to null (the openai SDK's way of
leaving it out) or to its no-effect value is accepted."""

from typing import Any

from worker.batch import errors as E
from worker.batch.errors import LineError

# field -> what it would ask for (in the error message)
_REFUSED = {
    "logit_bias": "biasing token logits",
    "suffix": "text after the insertion point",
    # response_format, guided_*, structured_outputs: worker.batch.guided
    "structural_tag": "structural tags (structured outputs)",
    # tools, tool_choice, parallel_tool_calls: worker.batch.tools
    "functions": "function calling",
    "function_call": "function calling",
    "stream_options": "streaming",
    "audio": "audio output",
    "prediction": "predicted outputs",
    "web_search_options": "web search",
    "reasoning_effort": "reasoning effort",
    "verbosity": "verbosity",
}
# field -> the value that asks for nothing (anything else is refused)
_NO_EFFECT = {"stream": False, "modalities": ["text"]}


def refuse_unsupported(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if value is None:
            continue
        if name in _REFUSED:
            _refuse(name, f"{_REFUSED[name]} is not supported; remove the field or set it to null")
        if name in _NO_EFFECT and value != _NO_EFFECT[name]:
            _refuse(name, f"only {_NO_EFFECT[name]!r} is supported in a batch, got {value!r}")
    _refuse_best_of(body)


def _refuse_best_of(body: dict[str, Any]) -> None:
    best_of, n = body.get("best_of"), body.get("n")
    if best_of is None:
        return
    if best_of != (1 if n is None else n):  # best_of == n is plain sampling of n choices
        _refuse("best_of", f"best_of {best_of!r} > n is not supported (only best_of == n)")


def _refuse(name: str, message: str) -> None:
    raise LineError(E.UNSUPPORTED_FIELD, message, f"body.{name}")
