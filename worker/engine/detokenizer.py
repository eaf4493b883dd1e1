"""Incremental detokenization and stop strings, one per generated sequence.

Decoding the whole output again after every token is quadratic; instead only the window
since the previous read is decoded (vLLM's prefix/read offsets), and text that ends in an incomplete
UTF-8 character is held back until the next token completes it.
"""

from dataclasses import dataclass, field
from typing import Protocol


class Decoder(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str: ...


@dataclass
class IncrementalDetokenizer:
    decoder: Decoder
    stop: list[str] = field(default_factory=list)
    skip_special_tokens: bool = True
    text: str = ""
    _prefix_offset: int = 0
    _read_offset: int = 0

    stopped: bool = False

    def update(self, output_token_ids: list[int], final: bool = False) -> str | None:
        """Extend `text` by the newly generated tokens; return the stop string that matched.

        `final` flushes text held back for an incomplete character: the sequence has ended,
        so what the tokenizer decodes now is the answer."""
        if self.stopped:
            return None
        ids = output_token_ids
        prefix_text = self._decode(ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(ids[self._prefix_offset :])
        if (full_text.endswith("\ufffd") and not final) or len(full_text) <= len(prefix_text):
            return None  # an incomplete character: wait for the next token
        new_text = full_text[len(prefix_text) :]
        # The tokens just read become the context of the next window, so a word-boundary
        # space that the tokenizer strips at the start of a decode is kept.
        self._prefix_offset, self._read_offset = self._read_offset, len(ids)
        self.text += new_text
        return self._truncate_at_stop(len(new_text))

    def _decode(self, ids: list[int]) -> str:
        return self.decoder.decode(ids, skip_special_tokens=self.skip_special_tokens) if ids else ""

    def _truncate_at_stop(self, new_chars: int) -> str | None:
        if not self.stop:
            return None
        # A stop string can straddle the old text and the new characters.
        window_start = max(0, len(self.text) - new_chars - max(map(len, self.stop)) + 1)
        best: tuple[int, str] | None = None
        for stop in self.stop:
            index = self.text.find(stop, window_start)
            if index != -1 and (best is None or index < best[0]):
                best = (index, stop)
        if best is None:
            return None
        self.text = self.text[: best[0]]  # the stop string itself is not part of the output
        self.stopped = True
        return best[1]
