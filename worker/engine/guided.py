"""The engine's edge to llguidance: one matcher per constrained sequence, the token mask of a
step's constrained rows computed together, and advancing the matchers by the sampled tokens.

A matcher has consumed exactly its sequence's output tokens, always (checked every step):
- preemption keeps the matcher. Recompute replays prompt and output through the model, but
  samples nothing until it reaches the end, where the matcher already stands;
- prefix caching and chunked prefill change which prompt tokens are computed, never the
  output, so they cannot move a matcher;
- n > 1: each sequence has its own matcher, compiled from the same grammar.
EOS is in the mask only where the grammar accepts. When the grammar can take nothing more
the sequence ends at once with "stop" (no EOS is sampled for it); a stop string or
max_tokens may end it earlier, and then the text is a prefix of a match (for JSON: possibly
incomplete, `finish_reason: length`). Sequences without a constraint are never looked at.
"""

from collections.abc import Callable
from dataclasses import dataclass

import llguidance
import llguidance.numpy

from worker.engine.sequence import Sequence
from worker.engine.token_mask import TokenMask, allocate_bits
from worker.guided_decoding import GuidedDecodingError
from worker.logs import get_logger

log = get_logger(__name__)

# Compiled grammars kept for reuse: a batch of lines mostly shares a few schemas, and a copy of
# a compiled matcher costs ~5 us where compiling one costs ~0.5-1 ms.
_MAX_TEMPLATES = 256


class GrammarStateError(RuntimeError):
    """A matcher disagrees with its sequence: an engine bug, never a user error."""


@dataclass
class _Matcher:
    matcher: llguidance.LLMatcher
    consumed: int = 0  # output tokens fed so far


class GuidedDecoder:
    def __init__(self, vocabulary: Callable[[], llguidance.LLTokenizer]):
        # Built on the first constrained request, then kept: a 103k vocabulary takes ~2 s.
        self._vocabulary = vocabulary
        self._ll_tokenizer: llguidance.LLTokenizer | None = None
        self._executor = llguidance.LLExecutor()
        self._matchers: dict[int, _Matcher] = {}
        self._templates: dict[str, llguidance.LLMatcher] = {}  # by grammar, least recent first

    @property
    def ll_tokenizer(self) -> llguidance.LLTokenizer:
        if self._ll_tokenizer is None:
            self._ll_tokenizer = self._vocabulary()
            log.info("grammar vocabulary built", vocab_size=self._ll_tokenizer.vocab_size)
        return self._ll_tokenizer

    def add(self, seq: Sequence) -> None:
        """Give `seq` its matcher; a constraint the vocabulary cannot serve is refused here."""
        guided = seq.sampling_params.guided_decoding
        if guided is None:
            return
        template = self._templates.pop(guided.compiled, None)
        if template is None:
            template = llguidance.LLMatcher(self.ll_tokenizer, guided.compiled, log_level=0)
            if template.is_error():
                raise GuidedDecodingError(f"guided_decoding.{guided.kind}: {template.get_error()}")
            if len(self._templates) >= _MAX_TEMPLATES:
                del self._templates[next(iter(self._templates))]
        self._templates[guided.compiled] = template
        self._matchers[seq.seq_id] = _Matcher(template.deep_copy())

    def release(self, seq: Sequence) -> None:
        self._matchers.pop(seq.seq_id, None)

    def mask(self, seqs: list[Sequence]) -> TokenMask | None:
        """The allowed tokens of the constrained rows among `seqs` (the sampler's rows)."""
        if not self._matchers:
            return None
        rows = [i for i, seq in enumerate(seqs) if seq.seq_id in self._matchers]
        if not rows:
            return None
        bits = allocate_bits(len(rows), self.ll_tokenizer.vocab_size)
        pairs = []
        for k, row in enumerate(rows):
            state = self._state(seqs[row])
            pairs.append((state.matcher, k))
        llguidance.numpy.fill_next_token_bitmask_par(self._executor, pairs, bits)
        return TokenMask(rows=rows, bits=bits)

    def advance(self, seqs: list[Sequence]) -> list[Sequence]:
        """Feed each unfinished constrained sequence its new token; return those whose grammar
        is complete (they must stop now). Finished ones release their matcher."""
        fed: list[tuple[Sequence, _Matcher]] = []
        for seq in seqs:
            state = self._matchers.get(seq.seq_id)
            if state is None:
                continue
            if seq.is_finished:
                self.release(seq)
            else:
                fed.append((seq, state))
        if not fed:
            return []
        ok = self._executor.consume_token_par([(s.matcher, seq.last_token) for seq, s in fed])
        complete = []
        for (seq, state), accepted in zip(fed, ok):
            if not accepted:
                raise GrammarStateError(
                    f"request {seq.request_id}: the grammar refused sampled token {seq.last_token}: "
                    f"{state.matcher.get_error()}"
                )
            state.consumed += 1
            if state.matcher.is_stopped():
                complete.append(seq)
                self.release(seq)
        return complete

    def _state(self, seq: Sequence) -> _Matcher:
        state = self._matchers[seq.seq_id]
        if state.consumed != seq.num_output_tokens:
            raise GrammarStateError(
                f"request {seq.request_id}: matcher fed {state.consumed} tokens, the sequence has "
                f"{seq.num_output_tokens}"
            )
        return state
