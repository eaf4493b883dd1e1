"""One raw input line -> a validated request, or a LineError saying what is wrong and where."""

import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from worker.batch import errors as E
from worker.batch.errors import LineError
from worker.batch.guided import GuidedBody, with_guided_decoding
from worker.batch.tools import ToolCalling, ToolsBody, tool_calling
from worker.batch.protocol import CHAT_URL, COMPLETIONS_DEFAULT_MAX_TOKENS, COMPLETIONS_URL, ChatBody, CompletionBody
from worker.batch.unsupported import refuse_unsupported
from worker.sampling_params import SamplingParams

_PARAM_FIELDS = (
    "n", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
    "repetition_penalty", "seed", "stop", "stop_token_ids", "bad_words", "min_tokens", "ignore_eos",
)


@dataclass(frozen=True)
class ParsedRequest:
    custom_id: str
    chat: bool
    body: ChatBody | CompletionBody
    params: SamplingParams
    tools: ToolCalling | None = None  # the line asks for one tool call (worker.batch.tools)


def parse_line(data: bytes, models: Collection[str] = ()) -> ParsedRequest:
    """models: the names this run serves; a body naming another model is refused (none: any)."""
    obj = _decode(data)
    custom_id = _custom_id(obj)
    try:
        return _parse_request(obj, custom_id, models)
    except LineError as exc:
        exc.custom_id = custom_id
        raise


def custom_id_of(data: bytes) -> str:
    """Only the line's custom_id (a line the run stops before serving needs no more)."""
    return _custom_id(_decode(data))


def _decode(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a BOM left by an editor: not content
    except UnicodeDecodeError as exc:
        raise LineError(E.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start} of the line") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise LineError(E.INVALID_JSON, f"not JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # hostile nesting must not take the run down
        raise LineError(E.INVALID_JSON, "not JSON we accept: nested too deeply") from None
    except ValueError as exc:
        raise LineError(E.INVALID_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise LineError(E.INVALID_REQUEST, f"a line must be a JSON object, got {type(obj).__name__}")
    return obj


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 would reach the sampler as inf
        raise ValueError(f"{text} does not fit a 64-bit float")
    return value


def _custom_id(obj: dict[str, Any]) -> str:
    if "custom_id" not in obj:
        raise LineError(E.MISSING_CUSTOM_ID, "is missing", "custom_id")
    value = obj["custom_id"]
    if not isinstance(value, str) or not value:
        raise LineError(E.MISSING_CUSTOM_ID, f"must be a non-empty string, got {value!r}", "custom_id")
    return value


def _parse_request(obj: dict[str, Any], custom_id: str, models: Collection[str]) -> ParsedRequest:
    if obj.get("method") != "POST":
        raise LineError(E.INVALID_METHOD, f"must be \"POST\", got {obj.get('method')!r}", "method")
    url = obj.get("url")
    if url not in (CHAT_URL, COMPLETIONS_URL):
        raise LineError(E.UNKNOWN_URL, f"must be {CHAT_URL} or {COMPLETIONS_URL}, got {url!r}", "url")
    raw_body = obj.get("body")
    if not isinstance(raw_body, dict):
        raise LineError(E.INVALID_BODY, f"must be a JSON object, got {type(raw_body).__name__}", "body")
    chat = url == CHAT_URL
    refuse_unsupported(raw_body)
    body = _validate_body(ChatBody if chat else CompletionBody, raw_body)
    _check_model(body.model, models)
    tools = tool_calling(_validate_body(ToolsBody, raw_body), chat)
    params = with_guided_decoding(sampling_params(body), _validate_body(GuidedBody, raw_body),
                                  tools.schema if tools else None)
    return ParsedRequest(custom_id, chat, body, params, tools)


def _check_model(model: str | None, models: Collection[str]) -> None:
    if model is not None and models and model not in models:
        raise LineError(E.MODEL_NOT_FOUND, f"the model {model!r} is not served here; this run serves "
                        f"{', '.join(repr(m) for m in models)}", "body.model", status=404)


def _validate_body(model: type, raw: dict[str, Any]) -> ChatBody | CompletionBody:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["body", *(str(p) for p in first["loc"])])
        raise LineError(E.INVALID_BODY, first["msg"], where) from None


def sampling_params(body: ChatBody | CompletionBody) -> SamplingParams:
    kw = {name: getattr(body, name) for name in _PARAM_FIELDS if getattr(body, name) is not None}
    if isinstance(body, ChatBody):
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        if body.top_logprobs is not None and not body.logprobs:
            raise LineError(E.INVALID_SAMPLING_PARAMS, "needs \"logprobs\": true", "body.top_logprobs")
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
    else:
        max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS if body.max_tokens is None else body.max_tokens
        logprobs = body.logprobs
        if body.echo and logprobs is not None:  # OpenAI's logprobs then cover the echoed prompt too
            kw["prompt_logprobs"] = logprobs
    if max_tokens is not None:
        kw["max_tokens"] = max_tokens
    if logprobs is not None:
        kw["logprobs"] = logprobs
    try:
        return SamplingParams(**kw)
    except ValueError as exc:
        name = str(exc).split(" ", 1)[0]
        field = "body." + ("top_logprobs" if name == "logprobs" and isinstance(body, ChatBody) else name)
        raise LineError(E.INVALID_SAMPLING_PARAMS, str(exc), field) from None
