"""The streaming loop: read lines, keep at most `window` of them between reading and writing,
feed the engine, and hand results to the sink strictly in input order as they complete.

Memory is bounded by the window (pending requests plus finished ones waiting for an earlier
line), never by the size of the input.
"""

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from worker.batch import errors as E
from worker.batch.build import LineResult, error_result, served_result
from worker.batch.errors import LineError
from worker.batch.ids import BatchIdentity
from worker.batch.lines import RawLine
from worker.batch.parse import ParsedRequest, parse_line
from worker.batch.prepare import EnginePrompt, Tokenizer, build_prompts
from worker.engine.request_errors import PromptTooLongError
from worker.outputs import EngineStats, RequestOutput
from worker.sampling_params import SamplingParams


class Engine(Protocol):
    tokenizer: Tokenizer
    max_model_len: int

    def add_request(self, request_id: str, prompt: str | None, sampling_params: SamplingParams,
                    prompt_token_ids: list[int] | None = None) -> None: ...
    def abort_request(self, request_id: str) -> None: ...
    def has_unfinished_requests(self) -> bool: ...
    def step(self) -> list[RequestOutput]: ...
    def stats(self) -> EngineStats: ...


class Sink(Protocol):
    def add(self, raw: RawLine, result: LineResult) -> None: ...


@dataclass
class _Slot:
    raw: RawLine
    req: ParsedRequest | None = None
    prompts: list[EnginePrompt] = field(default_factory=list)  # one engine request each
    outputs: dict[int, RequestOutput] = field(default_factory=dict)  # by prompt index
    result: LineResult | None = None


def run_pipeline(lines: Iterable[RawLine], engine: Engine, ident: BatchIdentity, sink: Sink,
                 window: int, on_result: Callable[[RawLine, LineResult], None] | None = None,
                 models: Collection[str] = ()) -> int:
    """Serve every non-blank line; returns the number of lines written to the sink.
    models: the served names a line's body.model must be among (none: any)."""
    assert window >= 1
    source = (raw for raw in lines if raw.data.strip())  # blank lines are not requests
    slots: dict[int, _Slot] = {}
    next_read = next_write = 0
    exhausted = False
    while True:
        while not exhausted and next_read - next_write < window:
            raw = next(source, None)
            if raw is None:
                exhausted = True
            else:
                slots[next_read] = _admit(raw, next_read, engine, ident, models)
                next_read += 1
        while next_write in slots and slots[next_write].result is not None:
            slot = slots.pop(next_write)
            sink.add(slot.raw, slot.result)
            if on_result:
                on_result(slot.raw, slot.result)
            next_write += 1
        if exhausted and next_write == next_read:
            return next_write
        if next_write in slots:  # the oldest line waits for the engine
            assert engine.has_unfinished_requests(), "a pending line has no request in the engine"
            for out in engine.step():
                line, prompt = out.request_id.split(".")
                slot = slots[int(line)]
                slot.outputs[int(prompt)] = out
                if len(slot.outputs) == len(slot.prompts):
                    slot.result = _finish(slot, ident, engine.tokenizer)


def _admit(raw: RawLine, seq: int, engine: Engine, ident: BatchIdentity, models: Collection[str]) -> _Slot:
    slot = _Slot(raw)
    try:
        slot.req = parse_line(raw.data, models)
        slot.prompts = build_prompts(slot.req, engine.tokenizer, engine.max_model_len)
        _add(engine, seq, slot)
    except LineError as err:
        slot.result = error_result(ident, raw.offset, err)
    return slot


def _add(engine: Engine, seq: int, slot: _Slot) -> None:
    """One engine request per prompt, "<line>.<prompt>"; all of them or none."""
    for i, prompt in enumerate(slot.prompts):
        request_id = f"{seq}.{i}"
        try:
            engine.add_request(request_id, prompt.prompt, slot.req.params, prompt_token_ids=prompt.prompt_token_ids)
        except ValueError as exc:
            for added in range(i):
                engine.abort_request(f"{seq}.{added}")
            reason = str(exc).removeprefix(f"request {request_id}: ")  # our internal id means nothing to users
            if isinstance(exc, PromptTooLongError):
                raise LineError(E.PROMPT_TOO_LONG, reason, prompt.field, custom_id=slot.req.custom_id) from None
            raise LineError(E.INVALID_BODY, f"the engine refused the request: {reason}", prompt.field,
                            custom_id=slot.req.custom_id) from None


def _finish(slot: _Slot, ident: BatchIdentity, tokenizer: Tokenizer) -> LineResult:
    outputs = [slot.outputs[i] for i in range(len(slot.prompts))]
    if failed := next((out for out in outputs if out.error_code != 200), None):
        err = LineError(E.ENGINE_ERROR, failed.error_msg or f"engine error {failed.error_code}",
                        status=500, custom_id=slot.req.custom_id)
        return error_result(ident, slot.raw.offset, err)
    return served_result(ident, slot.raw.offset, slot.req, list(zip(slot.prompts, outputs)), tokenizer)
