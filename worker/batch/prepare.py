"""A parsed request -> the prompt the engine runs (chat template, tokenization, length check)."""

import functools
from dataclasses import dataclass
from typing import Any, Protocol

from worker.batch import errors as E
from worker.batch.errors import LineError
from worker.batch.parse import ParsedRequest
from worker.batch.protocol import ChatBody, CompletionBody, Message


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def token_bytes(self, token_id: int) -> bytes: ...
    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True, **kw: Any) -> str: ...


@dataclass(frozen=True)
class EnginePrompt:
    prompt: str | None
    prompt_token_ids: list[int]


def build_prompt(req: ParsedRequest, tokenizer: Tokenizer, max_model_len: int) -> EnginePrompt:
    try:
        field = "body.messages" if req.chat else "body.prompt"
        prompt = _chat_prompt(req, tokenizer) if req.chat else _completion_prompt(req.body)
        if isinstance(prompt, str):
            _check_size(prompt, tokenizer, max_model_len, field)
        ids = list(prompt) if isinstance(prompt, list) else tokenizer.encode(prompt)
        _check_length(ids, max_model_len, field)
    except LineError as exc:
        exc.custom_id = req.custom_id
        raise
    return EnginePrompt(prompt if isinstance(prompt, str) else None, ids)


def _chat_prompt(req: ParsedRequest, tokenizer: Tokenizer) -> str:
    body: ChatBody = req.body
    messages = [_message(m, i) for i, m in enumerate(body.messages)]
    tools = {"tools": req.tools.tools} if req.tools else {}  # for templates that render them
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                             **tools, **(body.chat_template_kwargs or {}))
    except Exception as exc:
        # The template refusing the conversation (raise_exception, bad roles) is the line's
        # fault; anything else is a bug of ours and must stop the run, not hide in 400s.
        if not (type(exc).__module__.startswith("jinja2") or isinstance(exc, (ValueError, TypeError))):
            raise
        raise LineError(E.INVALID_BODY, f"chat template rejected the messages: {exc}", "body.messages") from None


def _message(m: Message, i: int) -> dict[str, Any]:
    """The message as the chat template reads it: role, text, and whatever else it carries
    (an assistant's tool_calls, a tool message's tool_call_id, a name), nulls dropped."""
    extra = {k: v for k, v in (m.model_extra or {}).items() if v is not None}
    return {"role": m.role, "content": _text(m.content, i)} | extra


def _text(content: str | list[dict] | None, i: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for j, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise LineError(E.INVALID_BODY, f"only text parts are supported, got type {part.get('type')!r}",
                            f"body.messages.{i}.content.{j}")
        parts.append(part["text"])
    return "".join(parts)


def _completion_prompt(body: CompletionBody) -> str | list[int]:
    return body.prompt


@functools.lru_cache(maxsize=4)
def _max_token_bytes(tokenizer: Tokenizer) -> int:
    """Bytes of the longest vocabulary entry (0: unknown). Pieces spell spaces and raw bytes
    with longer markers (U+2581, <0xNN>), so this over-estimates what one token covers."""
    return max((len(piece.encode()) for piece in getattr(tokenizer, "vocab", None) or ()), default=0)


def _check_size(prompt: str, tokenizer: Tokenizer, max_model_len: int, field: str) -> None:
    """Refuse, without tokenizing it, a prompt too long whatever its tokens: a 20 MB line
    would otherwise become ~1 GB of token ids just to be refused."""
    per_token = _max_token_bytes(tokenizer)
    size = len(prompt.encode())
    if per_token and size > max_model_len * per_token:
        raise LineError(E.PROMPT_TOO_LONG,
                        f"the prompt has {size} bytes, so at least {-(-size // per_token)} tokens; "
                        f"max_model_len is {max_model_len}", field)


def _check_length(ids: list[int], max_model_len: int, field: str) -> None:
    if not ids:
        raise LineError(E.INVALID_BODY, "the prompt is empty", field)
    if len(ids) >= max_model_len:
        raise LineError(E.PROMPT_TOO_LONG,
                        f"the prompt has {len(ids)} tokens; max_model_len is {max_model_len} "
                        "and at least one output token must fit", field)
