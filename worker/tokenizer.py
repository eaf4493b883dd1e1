"""Tokenizer and chat template from a model directory (tokenizer.model or tokenizer.json,
plus tokenizer_config.json).

Token ids equal paddleformers' `Ernie4_5Tokenizer` (a Llama-style sentencepiece tokenizer):
special and added tokens written literally in the text are matched first, the text between
them goes through sentencepiece (or, for models that ship only a tokenizer.json, such as
Qwen2, through the Hugging Face `tokenizers` library). The chat template is rendered with the same Jinja setup as
Hugging Face (sandboxed, trim_blocks/lstrip_blocks, raise_exception, tojson, strftime_now).
"""

import json
import re
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext  # loopcontrols; not imported by `import jinja2` itself
import sentencepiece as spm
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker.token_bytes import piece_bytes

_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class TokenizerError(ValueError):
    """The model directory has no usable tokenizer, or a chat template failed to render."""


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path}: invalid JSON: {e}") from e


def _token_str(value: Any) -> str | None:
    """tokenizer_config stores tokens as strings or as AddedToken dicts."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _as_list(value: Any) -> list[int]:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _pick_template(value: Any) -> str | None:
    """A template string, or HF's list of named templates (the one named "default")."""
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        return named.get("default")
    return value if isinstance(value, str) else None


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    # HF overrides Jinja's tojson so it does not HTML-escape.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _SentencePiece:
    def __init__(self, path: Path):
        self.sp = spm.SentencePieceProcessor(model_file=str(path))

    def vocab(self) -> dict[str, int]:
        return {self.sp.id_to_piece(i): i for i in range(self.sp.get_piece_size())}

    def added_tokens(self) -> dict[str, int]:
        return {}

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    def piece_bytes(self, token_id: int) -> bytes:
        return piece_bytes(self.sp.id_to_piece(token_id), byte_level=False)

    def is_control(self, token_id: int) -> bool:
        """Control pieces (<s>, </s>) decode to nothing in sentencepiece."""
        return token_id < self.sp.get_piece_size() and self.sp.is_control(token_id)


class _HFTokenizers:
    def __init__(self, path: Path):
        import tokenizers

        self.tk = tokenizers.Tokenizer.from_file(str(path))
        decoder = json.loads(self.tk.to_str()).get("decoder") or {}
        self.byte_level = "ByteLevel" in json.dumps(decoder)  # GPT-2 style pieces (Llama 3, Qwen2)

    def vocab(self) -> dict[str, int]:
        return self.tk.get_vocab(with_added_tokens=True)

    def added_tokens(self) -> dict[str, int]:
        return {t.content: i for i, t in self.tk.get_added_tokens_decoder().items()}

    def encode(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tk.decode(ids, skip_special_tokens=False)

    def piece_bytes(self, token_id: int) -> bytes:
        return piece_bytes(self.tk.id_to_token(token_id) or "", self.byte_level)

    def is_control(self, token_id: int) -> bool:
        return False


class Tokenizer:
    def __init__(self, backend: "_SentencePiece | _HFTokenizers", config: dict[str, Any],
                 added: dict[str, int], eos_token_ids: list[int]):
        self.backend = backend
        self.chat_template = _pick_template(config.get("chat_template"))
        self.special_tokens_map = {k: _token_str(config.get(k)) for k in _SPECIAL_KEYS if _token_str(config.get(k))}
        for key, value in config.items():  # ERNIE's extra named tokens (sys_start_token, ...)
            if key.endswith("_token") and key not in self.special_tokens_map and _token_str(value):
                self.special_tokens_map[key] = _token_str(value)
        extra = [t for t in (_token_str(x) for x in config.get("additional_special_tokens") or []) if t]
        self.additional_special_tokens = extra
        added = backend.added_tokens() | added
        self.vocab: dict[str, int] = backend.vocab() | added
        specials = [*self.special_tokens_map.values(), *extra]
        self.all_special_ids = sorted({self.vocab[t] for t in specials if t in self.vocab})
        literal = sorted({*specials, *added} & self.vocab.keys(), key=len, reverse=True)
        self._literal_pieces = frozenset(literal)
        self._split = re.compile("(" + "|".join(map(re.escape, literal)) + ")") if literal else None
        tok_eos = self.vocab.get(self.special_tokens_map.get("eos_token", ""))
        ids = [*eos_token_ids, *([tok_eos] if tok_eos is not None else [])]
        self.eos_token_ids: tuple[int, ...] = tuple(dict.fromkeys(ids))
        self.bos_token_id = self.vocab.get(self.special_tokens_map.get("bos_token", ""))
        self.add_bos_token = bool(config.get("add_bos_token", False))
        self.add_eos_token = bool(config.get("add_eos_token", False))

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> "Tokenizer":
        model_dir = Path(model_dir)
        if (model_dir / "tokenizer.model").exists():  # ERNIE, Llama 2: what paddleformers uses
            backend: _SentencePiece | _HFTokenizers = _SentencePiece(model_dir / "tokenizer.model")
        elif (model_dir / "tokenizer.json").exists():
            backend = _HFTokenizers(model_dir / "tokenizer.json")
        else:
            raise TokenizerError(f"{model_dir}: neither tokenizer.model nor tokenizer.json is present")
        config = _read_json(model_dir / "special_tokens_map.json") | _read_json(model_dir / "tokenizer_config.json")
        added = {k: int(v) for k, v in _read_json(model_dir / "added_tokens.json").items()}
        for token_id, token in (config.get("added_tokens_decoder") or {}).items():
            added[token["content"]] = int(token_id)
        jinja_file = model_dir / "chat_template.jinja"  # newer HF layout: the template on its own
        if not config.get("chat_template") and jinja_file.exists():
            config["chat_template"] = jinja_file.read_text(encoding="utf-8")
        eos = _as_list(_read_json(model_dir / "generation_config.json").get("eos_token_id"))
        eos += _as_list(_read_json(model_dir / "config.json").get("eos_token_id"))
        return cls(backend, config, added, eos)

    @property
    def eos_token_id(self) -> int | None:
        return self.eos_token_ids[0] if self.eos_token_ids else None

    @property
    def vocab_size(self) -> int:
        return max(self.vocab.values()) + 1

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids: list[int] = []
        chunks = self._split.split(text) if self._split else [text]
        for i, chunk in enumerate(chunks):
            if i % 2:  # a literal special/added token
                ids.append(self.vocab[chunk])
            elif chunk:
                ids.extend(self.backend.encode(chunk))
        if add_special_tokens:
            ids = [self.bos_token_id] * (self.add_bos_token and self.bos_token_id is not None) + ids
            ids += [self.eos_token_id] * (self.add_eos_token and self.eos_token_id is not None)
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        out, run = [], []
        for i in ids:
            i = int(i)
            if i in skip or i not in self._id_to_token:
                continue  # ids past the tokenizer (padded embedding rows) have no text
            if i in self._literal_ids:  # sentencepiece would drop control pieces such as </s>
                out.append(self._decode_run(run) + self._id_to_token[i])
                run = []
            else:
                run.append(i)
        out.append(self._decode_run(run))
        return "".join(out)

    def token_bytes(self, token_id: int) -> bytes:
        """What the token stands for, byte for byte (a special or added token: its text)."""
        piece = self._id_to_token.get(int(token_id))
        if piece is None:  # past the tokenizer (a padded embedding row)
            return b""
        if piece in self._literal_pieces or int(token_id) in self._literal_ids:
            return piece.encode()
        return self.backend.piece_bytes(int(token_id))

    @cached_property
    def _id_to_token(self) -> dict[int, str]:
        return {i: t for t, i in self.vocab.items()}

    @cached_property
    def _literal_ids(self) -> frozenset[int]:
        return frozenset(self.all_special_ids) | frozenset(
            i for i in self._id_to_token if self.backend.is_control(i)
        )

    def _decode_run(self, ids: list[int]) -> str:
        return self.backend.decode(ids) if ids else ""

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True,
                            chat_template: str | None = None, **chat_template_kwargs: Any) -> str:
        template = chat_template or self.chat_template
        if not template:
            raise TokenizerError("the model directory's tokenizer_config.json has no chat_template")
        context = {**self.special_tokens_map, "additional_special_tokens": self.additional_special_tokens,
                   **chat_template_kwargs}
        try:
            return _compile(template).render(
                messages=messages, add_generation_prompt=add_generation_prompt, **context
            )
        except jinja2.exceptions.TemplateError as e:
            raise TokenizerError(f"chat template failed: {e}") from e


_compiled: dict[str, jinja2.Template] = {}


def _compile(template: str) -> jinja2.Template:
    if template not in _compiled:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[jinja2.ext.loopcontrols])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        _compiled[template] = env.from_string(template)
    return _compiled[template]
