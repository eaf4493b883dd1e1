"""Engine results and line errors -> output lines (worker.batch.responses)."""

from dataclasses import dataclass

from worker.batch.errors import LineError
from worker.batch.ids import BatchIdentity
from worker.batch.parse import ParsedRequest
from worker.batch.prepare import EnginePrompt, Tokenizer
from worker.batch.responses import (
    ChatChoice, ChatCompletion, ChatMessage, Completion, CompletionChoice, LineErrorBody,
    OutputLine, PromptTokensDetails, Response, Usage,
)
from worker.batch.tools import tool_calls
from worker.outputs import CompletionOutput, RequestOutput
from worker.token_bytes import token_text


@dataclass(frozen=True)
class LineResult:
    """An output line plus what the summary counts about it."""

    line: OutputLine
    error_code: str | None = None
    error_param: str | None = None  # the field an error line names (the error file's `param`)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    derived_id: bool = False  # custom_id made up for a line without a usable one


def derived_custom_id(offset: int) -> str:
    """custom_id of a line without a usable one: a string (BatchRequestOutput requires one),
    stable across runs and shards because it comes from the line's byte offset."""
    return f"batchinfer-byte-{offset}"


def error_result(ident: BatchIdentity, offset: int, err: LineError) -> LineResult:
    """An error line; its message gets "line N: " prepended when the output is assembled
    (worker.batch.assemble), because only then is the line's global number known."""
    message, custom_id = err.detail, err.custom_id
    if custom_id is None:
        custom_id = derived_custom_id(offset)
        message += f" (the line has no usable custom_id; {custom_id!r} stands in for it)"
    line = OutputLine(
        id=ident.line_id(offset), custom_id=custom_id,
        response=Response(status_code=err.status, request_id=ident.request_id(offset), body=None),
        error=LineErrorBody(code=err.code, message=message))
    return LineResult(line, error_code=err.code, error_param=err.field, derived_id=err.custom_id is None)


def served_result(ident: BatchIdentity, offset: int, req: ParsedRequest, prompt: EnginePrompt,
                  out: RequestOutput, tokenizer: Tokenizer) -> LineResult:
    n_prompt = len(prompt.prompt_token_ids)
    n_completion = sum(len(c.token_ids) for c in out.outputs)
    usage = Usage(prompt_tokens=n_prompt, total_tokens=n_prompt + n_completion, completion_tokens=n_completion,
                  prompt_tokens_details=PromptTokensDetails(cached_tokens=out.num_cached_tokens))
    choices = sorted(out.outputs, key=lambda c: c.index)
    body_id = ident.completion_id(offset, req.chat)
    model = req.body.model or ident.model  # the served name the line asked for, else the first
    if req.chat:
        body = ChatCompletion(id=body_id, created=ident.created, model=model, usage=usage,
                              choices=[_chat_choice(c, req, prompt, tokenizer) for c in choices])
    else:
        body = Completion(id=body_id, created=ident.created, model=model, usage=usage,
                          choices=[_completion_choice(c, req, prompt, tokenizer) for c in choices])
    line = OutputLine(id=ident.line_id(offset), custom_id=req.custom_id, error=None,
                      response=Response(status_code=200, request_id=ident.request_id(offset), body=body))
    return LineResult(line, None, n_prompt, n_completion, out.num_cached_tokens)


def _finish(c: CompletionOutput) -> str:
    # The engine reports "length" when max_tokens (or max_model_len) cut the text.
    return "length" if c.finish_reason == "length" else "stop"


def _chat_choice(c: CompletionOutput, req: ParsedRequest, prompt: EnginePrompt, tok: Tokenizer) -> ChatChoice:
    ids = req.body.return_token_ids
    # A cut call (max_tokens) is not a call: its partial JSON stays the content, "length".
    calls = tool_calls(c.text, req.custom_id, c.index) if req.tools and c.finish_reason == "stop" else None
    message = ChatMessage(content=None if calls else c.text, reasoning_content=c.reasoning_content,
                          tool_calls=calls, prompt_token_ids=prompt.prompt_token_ids if ids else None,
                          completion_token_ids=list(c.token_ids) if ids else None)
    logprobs = _chat_logprobs(c, req.params.logprobs, tok) if req.params.logprobs is not None else None
    return ChatChoice(index=c.index, message=message, logprobs=logprobs,
                      finish_reason="tool_calls" if calls else _finish(c))


def _completion_choice(c: CompletionOutput, req: ParsedRequest, prompt: EnginePrompt,
                       tok: Tokenizer) -> CompletionChoice:
    ids = req.body.return_token_ids
    echoed = (prompt.prompt if prompt.prompt is not None else tok.decode(prompt.prompt_token_ids)) if req.body.echo else ""
    logprobs = _completion_logprobs(c, req.params.logprobs, tok) if req.params.logprobs is not None else None
    text = echoed + c.text
    return CompletionChoice(index=c.index, text=text, reasoning_content=c.reasoning_content,
                            prompt_token_ids=prompt.prompt_token_ids if ids else None,
                            completion_token_ids=list(c.token_ids) if ids else None,
                            logprobs=logprobs, finish_reason=_finish(c))


def _top(entry: dict[int, float], k: int) -> list[tuple[int, float]]:
    return sorted(entry.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def _token_entry(token_id: int, logprob: float | None, tok: Tokenizer) -> dict:
    data = tok.token_bytes(token_id)
    return {"token": token_text(data), "logprob": logprob, "bytes": list(data)}


def _chat_logprobs(c: CompletionOutput, k: int, tok: Tokenizer) -> dict:
    content = []
    for token_id, entry in zip(c.token_ids, c.logprobs or []):
        item = _token_entry(token_id, entry.get(token_id), tok)
        item["top_logprobs"] = [_token_entry(t, lp, tok) for t, lp in _top(entry, k)]
        content.append(item)
    return {"content": content}


def _completion_logprobs(c: CompletionOutput, k: int, tok: Tokenizer) -> dict:
    tokens, token_logprobs, top, offsets, pos = [], [], [], [], 0
    for token_id, entry in zip(c.token_ids, c.logprobs or []):
        data = tok.token_bytes(token_id)
        tokens.append(token_text(data))
        token_logprobs.append(entry.get(token_id))
        top.append({token_text(tok.token_bytes(t)): lp for t, lp in _top(entry, k)})
        offsets.append(pos)
        pos += len(data.decode("utf-8", errors="replace"))
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}
