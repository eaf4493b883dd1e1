"""The bytes one token stands for, as OpenAI's logprobs report them: a byte-fallback piece
(<0xE4>) is that byte, a sentencepiece word marker is a space, a byte-level BPE piece maps
back through GPT-2's byte-to-character table. Decoding a single token as text would turn a
partial UTF-8 sequence into U+FFFD and drop a leading space."""

import functools
import re

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_WORD_MARK = "\u2581"


@functools.cache
def _byte_level_table() -> dict[str, int]:
    """GPT-2's reversible map: printable bytes stand for themselves, the others are shifted
    past 255 so that every byte has a visible character."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in kept]
    table = {chr(b): b for b in kept}
    table |= {chr(256 + i): b for i, b in enumerate(shifted)}
    return table


def piece_bytes(piece: str, byte_level: bool) -> bytes:
    if byte_level:
        table = _byte_level_table()
        return bytes(table[c] for c in piece) if all(c in table for c in piece) else piece.encode()
    if m := _BYTE_PIECE.fullmatch(piece):
        return bytes([int(m.group(1), 16)])
    return piece.replace(_WORD_MARK, " ").encode()


def token_text(data: bytes) -> str:
    """The token as a string: its text, or OpenAI's "bytes:\\xNN" spelling when it is not
    whole UTF-8 (so distinct byte tokens stay distinct keys in completions' top_logprobs)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in data)
