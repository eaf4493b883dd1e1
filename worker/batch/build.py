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


def served_result(ident: BatchIdentity, offset: int, req: ParsedRequest,
                  results: list[tuple[EnginePrompt, RequestOutput]], tokenizer: Tokenizer) -> LineResult:
    """results: each prompt of the line with its engine output (chat: one). As OpenAI numbers
    them, choice `index` is prompt * n + completion, and usage sums over the prompts."""
    n_prompt = sum(len(prompt.prompt_token_ids) for prompt, _ in results)
    n_completion = sum(len(c.token_ids) for _, out in results for c in out.outputs)
    n_cached = sum(out.num_cached_tokens for _, out in results)
    usage = Usage(prompt_tokens=n_prompt, total_tokens=n_prompt + n_completion, completion_tokens=n_completion,
                  prompt_tokens_details=PromptTokensDetails(cached_tokens=n_cached))
    choices = [(i * req.params.n + c.index, c, prompt, out)
               for i, (prompt, out) in enumerate(results) for c in sorted(out.outputs, key=lambda c: c.index)]
    body_id = ident.completion_id(offset, req.chat)
    model = req.body.model or ident.model  # the served name the line asked for, else the first
    if req.chat:
        body = ChatCompletion(id=body_id, created=ident.created, model=model, usage=usage,
                              choices=[_chat_choice(i, c, req, prompt, tokenizer) for i, c, prompt, _ in choices])
    else:
        body = Completion(id=body_id, created=ident.created, model=model, usage=usage,
                          choices=[_completion_choice(i, c, req, prompt, out, tokenizer)
                                   for i, c, prompt, out in choices])
    line = OutputLine(id=ident.line_id(offset), custom_id=req.custom_id, error=None,
                      response=Response(status_code=200, request_id=ident.request_id(offset), body=body))
    return LineResult(line, prompt_tokens=n_prompt, completion_tokens=n_completion, cached_tokens=n_cached)


def _finish(c: CompletionOutput) -> str:
    # The engine reports "length" when max_tokens (or max_model_len) cut the text.
    return "length" if c.finish_reason == "length" else "stop"


def _chat_choice(index: int, c: CompletionOutput, req: ParsedRequest, prompt: EnginePrompt,
                 tok: Tokenizer) -> ChatChoice:
    ids = req.body.return_token_ids
    # A cut call (max_tokens) is not a call: its partial JSON stays the content, "length".
    calls = tool_calls(c.text, req.custom_id, index) if req.tools and c.finish_reason == "stop" else None
    message = ChatMessage(content=None if calls else c.text, reasoning_content=c.reasoning_content,
                          tool_calls=calls, prompt_token_ids=prompt.prompt_token_ids if ids else None,
                          completion_token_ids=list(c.token_ids) if ids else None)
    logprobs = _chat_logprobs(c, req.params.logprobs, tok) if req.params.logprobs is not None else None
    return ChatChoice(index=index, message=message, logprobs=logprobs,
                      finish_reason="tool_calls" if calls else _finish(c))


def _completion_choice(index: int, c: CompletionOutput, req: ParsedRequest, prompt: EnginePrompt,
                       out: RequestOutput, tok: Tokenizer) -> CompletionChoice:
    ids, echo, k = req.body.return_token_ids, req.body.echo, req.params.logprobs
    echoed = (prompt.prompt if prompt.prompt is not None else tok.decode(prompt.prompt_token_ids)) if echo else ""
    logprobs = None
    if k is not None:
        # With echo they cover the prompt first, as OpenAI's do (its first token has none).
        token_ids = [*prompt.prompt_token_ids, *c.token_ids] if echo else c.token_ids
        entries = [*out.prompt_logprobs, *(c.logprobs or [])] if echo else (c.logprobs or [])
        logprobs = _completion_logprobs(token_ids, entries, k, tok)
    return CompletionChoice(index=index, text=echoed + c.text, reasoning_content=c.reasoning_content,
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


def _completion_logprobs(token_ids: list[int], entries: list[dict[int, float] | None], k: int,
                         tok: Tokenizer) -> dict:
    """text_offset counts characters from the start of the choice's text (the echoed prompt
    included); an entry of None (the first prompt token) gives null logprobs."""
    tokens, token_logprobs, top, offsets, pos = [], [], [], [], 0
    for token_id, entry in zip(token_ids, entries):
        data = tok.token_bytes(token_id)
        tokens.append(token_text(data))
        token_logprobs.append(None if entry is None else entry.get(token_id))
        top.append(None if entry is None else {token_text(tok.token_bytes(t)): lp for t, lp in _top(entry, k)})
        offsets.append(pos)
        pos += len(data.decode("utf-8", errors="replace"))
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}
