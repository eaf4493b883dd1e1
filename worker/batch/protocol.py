"""The request bodies we serve, as pydantic models. Every optional field also accepts an
explicit null meaning "the default", as the openai SDK writes its request types."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
# OpenAI's API reference: a completion without max_tokens generates 16 tokens.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16


class SamplingBody(BaseModel):
    """OpenAI body fields that map onto SamplingParams (FastDeploy extensions included).
    Fields we do not implement are refused before this model (worker.batch.unsupported);
    the rest of the unknown ones change nothing (user, metadata, store, ...) and are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    n: StrictInt | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: StrictInt | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    seed: StrictInt | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[StrictInt] | None = None
    bad_words: list[str] | None = None
    max_tokens: StrictInt | None = None
    min_tokens: StrictInt | None = None
    ignore_eos: StrictBool | None = None
    # FastDeploy: also return the prompt and completion token ids in each choice.
    return_token_ids: StrictBool | None = None


class Message(BaseModel):
    # Extra keys (tool_calls, tool_call_id, name) are passed on to the chat template.
    model_config = ConfigDict(extra="allow")

    # OpenAI's roles; chat templates silently drop a message whose role they do not know.
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatBody(SamplingBody):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None
    chat_template_kwargs: dict[str, Any] | None = None


class CompletionBody(SamplingBody):
    # A string, token ids, or a list of either: one choice per prompt x n (worker.batch.prepare).
    prompt: str | list[StrictInt] | list[str] | list[list[StrictInt]]
    logprobs: StrictInt | None = None
    echo: StrictBool | None = None
