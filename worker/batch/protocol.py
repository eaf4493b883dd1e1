"""The input line (OpenAI batch format) and the request bodies we serve, as pydantic models."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"


class RequestLine(BaseModel):
    """`{"custom_id": ..., "method": "POST", "url": ..., "body": {...}}`; checked field by field
    in worker.batch.parse so each problem gets its own error code."""

    model_config = ConfigDict(extra="ignore")

    custom_id: str
    method: Literal["POST"]
    url: Literal["/v1/chat/completions", "/v1/completions"]
    body: dict[str, Any]


class SamplingBody(BaseModel):
    """OpenAI body fields that map onto SamplingParams (FastDeploy extensions included).
    Unknown fields (model, user, metadata, ...) are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore")

    n: StrictInt = 1
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
    ignore_eos: StrictBool = False
    # FastDeploy: also return the prompt and completion token ids in each choice.
    return_token_ids: StrictBool = False
    stream: StrictBool = False

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, value: bool) -> bool:
        if value:
            raise ValueError("streaming is not available in a batch; remove stream or set it to false")
        return value


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    # OpenAI's roles; chat templates silently drop a message whose role they do not know.
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatBody(SamplingBody):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = None
    logprobs: StrictBool = False
    top_logprobs: StrictInt | None = None
    chat_template_kwargs: dict[str, Any] | None = None


class CompletionBody(SamplingBody):
    # One prompt per line: a string, or token ids. (Lists of prompts belong on separate lines.)
    prompt: str | list[StrictInt]
    logprobs: StrictInt | None = None
    echo: StrictBool = False
