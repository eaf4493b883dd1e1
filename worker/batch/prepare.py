"""A parsed request -> the prompts the engine runs (chat template, tokenization). A completion
may hold several prompts; each becomes its own engine request. Their length in tokens is
checked by the engine (worker.engine.request_errors), once; here only a size bound that spares
tokenizing a prompt that cannot fit."""

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
    field: str  # where the line holds it: body.messages, body.prompt, body.prompt.1


def build_prompts(req: ParsedRequest, tokenizer: Tokenizer, max_model_len: int) -> list[EnginePrompt]:
    try:
        if req.chat:
            sources = [(_chat_prompt(req, tokenizer), "body.messages")]
        else:
            sources = _completion_prompts(req.body)
        return [_engine_prompt(prompt, field, tokenizer, max_model_len) for prompt, field in sources]
    except LineError as exc:
        exc.custom_id = req.custom_id
        raise


def _engine_prompt(prompt: str | list[int], field: str, tokenizer: Tokenizer, max_model_len: int) -> EnginePrompt:
    if isinstance(prompt, list):
        return EnginePrompt(None, list(prompt), field)
    _check_size(prompt, tokenizer, max_model_len, field)
    return EnginePrompt(prompt, tokenizer.encode(prompt), field)


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


def _completion_prompts(body: CompletionBody) -> list[tuple[str | list[int], str]]:
    """A string or token ids is one prompt; a list of either is one prompt per entry."""
    prompt = body.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        return [(p, f"body.prompt.{i}") for i, p in enumerate(prompt)]
    return [(prompt, "body.prompt")]


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
