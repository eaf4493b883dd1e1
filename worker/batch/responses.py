"""The output line and the response bodies, field for field (and in the key order) of the
FastDeploy run-batch reference example; serialized as compact JSON, UTF-8 unescaped."""

from typing import Any, Literal

from pydantic import BaseModel


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int
    prompt_tokens_details: PromptTokensDetails


class ChatMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None  # null when the message is a tool call
    multimodal_content: Any = None
    reasoning_content: str | None = None
    tool_calls: Any = None
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    prompt_tokens: str | None = None
    completion_tokens: str | None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: Literal["stop", "length", "tool_calls"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    prompt_tokens: str | None = None
    completion_tokens: str | None = None
    reasoning_content: str | None = None
    tool_calls: Any = None
    logprobs: dict[str, Any] | None = None
    finish_reason: Literal["stop", "length"]


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class Response(BaseModel):
    status_code: int
    request_id: str
    body: ChatCompletion | Completion | None


class LineErrorBody(BaseModel):
    code: str
    message: str


class JsonLine(BaseModel):
    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8") + b"\n"


class OutputLine(JsonLine):
    id: str
    custom_id: str
    response: Response | None
    error: LineErrorBody | None
