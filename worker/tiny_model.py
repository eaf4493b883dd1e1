"""A small, deterministic model directory in the real on-disk format, no download: ERNIE 4.5
(default), Qwen3 or Qwen3-MoE (tiny_families.py holds what differs between them).

Same seed and options -> the same bytes. The weights are random (the text is meaningless);
the tokenizer is a byte-fallback BPE sentencepiece model trained here on a generated corpus,
with ERNIE's special tokens and chat template, so any UTF-8 text round-trips.
"""

import io
import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.numpy import save_file

from worker.tiny_families import ERNIE_FAMILIES, Family, attention_extras, family_config, is_sparse, moe_weights

# ERNIE 4.5's special tokens (tokenizer_config.json of baidu/ERNIE-4.5-0.3B-*): <unk>, <s>, </s>
# take ids 0, 1, 2 as in the real vocabulary; the rest are user-defined pieces.
SPECIAL_PIECES = [
    "<|begin_of_sentence|>", "<|end_of_sentence|>",
    *(f"<mask:{i}>" for i in range(8)),
    "<|IMAGE_PLACEHOLDER|>", "<|IMAGE_START|>", "<|IMAGE_END|>", "<think>", "</think>",
]
# The chat template shipped in ERNIE-4.5-0.3B's tokenizer_config.json.
CHAT_TEMPLATE = (
    "{%- if not add_generation_prompt is defined -%}\n    {%- set add_generation_prompt = true -%}\n"
    "{%- endif -%}\n{%- if not cls_token is defined -%}\n"
    "    {%- set cls_token = \"<|begin_of_sentence|>\" -%}\n{%- endif -%}\n"
    "{%- if not sep_token is defined -%}\n    {%- set sep_token = \"<|end_of_sentence|>\" -%}\n"
    "{%- endif -%}\n{{- cls_token -}}\n{%- for message in messages -%}\n"
    "    {%- if message[\"role\"] == \"user\" -%}\n        {{- \"User: \" + message[\"content\"] + \"\\n\" -}}\n"
    "    {%- elif message[\"role\"] == \"assistant\" -%}\n"
    "        {{- \"Assistant: \" + message[\"content\"] + sep_token -}}\n"
    "    {%- elif message[\"role\"] == \"system\" -%}\n        {{- message[\"content\"] + \"\\n\" -}}\n"
    "    {%- endif -%}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n"
    "    {{- \"Assistant: \" -}}\n{%- endif -%}"
)
_MAX_SPM_VOCAB = 1024
_BRANCH_GAIN = 3.0


class TinyModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    num_layers: int = Field(2, ge=1)
    hidden_size: int = Field(64, ge=8)
    num_attention_heads: int = Field(4, ge=1)
    num_key_value_heads: int = Field(2, ge=1)
    head_dim: int | None = Field(None, ge=2)
    intermediate_size: int = Field(128, ge=1)
    vocab_size: int = Field(1024, ge=512)
    max_position_embeddings: int = Field(4096, ge=16)
    rope_theta: float = 500000.0
    tie_word_embeddings: bool = True
    seed: int = 0
    layout: Literal["paddle", "pt"] = "pt"
    family: Family = "ernie4_5"
    # The MoE families: experts (Qwen3-MoE: which layers stay dense, layer 0 by default: one of
    # each; ERNIE 4.5 MoE: layers from moe_layer_start_index on, every moe_layer_interval-th).
    num_experts: int = Field(4, ge=1)
    num_experts_per_tok: int = Field(2, ge=1)
    moe_intermediate_size: int = Field(32, ge=1)
    norm_topk_prob: bool = True
    decoder_sparse_step: int = Field(1, ge=1)
    mlp_only_layers: tuple[int, ...] = (0,)
    moe_num_shared_experts: int = Field(1, ge=0)
    moe_layer_start_index: int = Field(1, ge=0)
    moe_layer_interval: int = Field(1, ge=1)
    moe_scoring: Literal["softmax", "sigmoid"] = "softmax"  # ERNIE's scoring_func
    # The routed experts as transformers 5's 3-D `experts.gate_up_proj` / `experts.down_proj`.
    fused_experts: bool = False

    @model_validator(mode="after")
    def _check(self) -> "TinyModelSpec":
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.num_experts_per_tok > self.num_experts:
            raise ValueError("num_experts_per_tok must not exceed num_experts")
        if self.layout == "paddle" and self.family not in ERNIE_FAMILIES:
            raise ValueError("layout='paddle' exists only for the ERNIE families")
        if self.fused_experts and (self.layout == "paddle" or not self.family.endswith("_moe")):
            raise ValueError("fused_experts exists only for a MoE family in the pt layout")
        if (self.head_dim or self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("head_dim must be even")
        return self

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads


def _corpus(seed: int) -> list[str]:
    """Deterministic pseudo-text: words from syllables, some digits, CJK and punctuation."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sha", "to", "vi", "an", "el", "or", "ing", "the",
                 "er", "qu", "st", "ba", "de", "fo", "gi", "hu", "ja", "ze", "pa"]
    words = ["".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(400)]
    words += ["User", "Assistant", "system", "hello", "world", "the", "a", "is", "of", "and",
              "你好", "世界", "文心", "模型", "Paddle", "ERNIE", "batch", "inference"]
    lines = []
    for _ in range(3000):
        n = int(rng.integers(3, 16))
        parts = [str(w) for w in rng.choice(words, size=n)]
        if rng.random() < 0.3:
            parts.append(str(int(rng.integers(0, 10000))))
        lines.append(" ".join(parts) + str(rng.choice([".", "?", "!", ",", ":"])))
    return lines


def build_sentencepiece(vocab_size: int, seed: int) -> bytes:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(seed)), model_writer=buf, model_type="bpe",
        vocab_size=vocab_size, byte_fallback=True, character_coverage=1.0,
        normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
        split_digits=True, allow_whitespace_only_pieces=True, user_defined_symbols=SPECIAL_PIECES,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, hard_vocab_limit=False,
        minloglevel=2,
    )
    return buf.getvalue()


def _random_weights(spec: TinyModelSpec) -> dict[str, np.ndarray]:
    """HF names and [out, in] linear weights (the 'pt' layout)."""
    rng = np.random.default_rng(spec.seed)
    h, d = spec.hidden_size, spec.resolved_head_dim
    q, kv, inter = spec.num_attention_heads * d, spec.num_key_value_heads * d, spec.intermediate_size

    def normal(*shape, fan_in, gain=1.0):
        return (rng.standard_normal(shape) * (gain / np.sqrt(fan_in))).astype(np.float32)

    def norm(size: int = h):
        return (1.0 + 0.1 * rng.standard_normal(size)).astype(np.float32)

    # Embeddings of std 0.3: with tied weights, std 1 makes every logit row one-hot on the
    # input token (greedy and sampled text alike collapse to one repeated token).
    w = {"model.embed_tokens.weight": 0.3 * normal(spec.vocab_size, h, fan_in=1)}
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm()
        for name, rows in (("q", q), ("k", kv), ("v", kv)):
            w[p + f"self_attn.{name}_proj.weight"] = normal(rows, h, fan_in=h)
        # Strong residual branches, for the same reason as the small embeddings.
        w[p + "self_attn.o_proj.weight"] = normal(h, q, fan_in=q, gain=_BRANCH_GAIN)
        w.update(attention_extras(spec, p, norm))
        w[p + "post_attention_layernorm.weight"] = norm()
        if is_sparse(spec, i):
            w.update(moe_weights(spec, p, normal, _BRANCH_GAIN))
            continue
        w[p + "mlp.gate_proj.weight"] = normal(inter, h, fan_in=h)
        w[p + "mlp.up_proj.weight"] = normal(inter, h, fan_in=h)
        w[p + "mlp.down_proj.weight"] = normal(h, inter, fan_in=inter, gain=_BRANCH_GAIN)
    w["model.norm.weight"] = norm()
    if not spec.tie_word_embeddings:
        w["lm_head.weight"] = normal(spec.vocab_size, h, fan_in=h)
    return w


def to_paddle_layout(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF names/[out, in] -> ERNIE Paddle names (`ernie.`)/[in, out]; each MoE expert's and the
    shared expert's gate and up fused as `up_gate_proj` [H, 2I], as ERNIE-4.5-*-Paddle stores them."""
    out = {}
    for name, t in weights.items():
        new = "ernie." + name[len("model."):] if name.startswith("model.") else name
        is_linear = t.ndim == 2 and ("_proj." in name or name.endswith("mlp.gate.weight") or name == "lm_head.weight")
        out[new] = np.ascontiguousarray(t.T) if is_linear else t
    for name in [n for n in out if "experts." in n and n.endswith(".gate_proj.weight")]:
        p = name[: -len("gate_proj.weight")]
        out[p + "up_gate_proj.weight"] = np.ascontiguousarray(
            np.concatenate([out.pop(name), out.pop(p + "up_proj.weight")], axis=1))
    return out


def _config(spec: TinyModelSpec, eos_ids: list[int]) -> dict:
    return {
        **family_config(spec),
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "hidden_act": "silu", "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "max_position_embeddings": spec.max_position_embeddings,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads, "head_dim": spec.resolved_head_dim,
        "num_hidden_layers": spec.num_layers, "rms_norm_eps": 1e-05, "rope_theta": spec.rope_theta,
        "tie_word_embeddings": spec.tie_word_embeddings, "use_cache": False,
        "vocab_size": spec.vocab_size, "torch_dtype": "float32",
        # paddleformers' fused RMSNorm kernel is missing on CPU (and SIGILLs on some).
        "fuse_rms_norm": False,
    }


def _tokenizer_config() -> dict:
    return {
        "add_bos_token": False, "add_eos_token": False,
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>", "unk_token": "<unk>",
        "cls_token": "<|begin_of_sentence|>", "sep_token": "<|end_of_sentence|>",
        "mask_token": "<mask:1>", "sys_start_token": "<mask:4>", "sys_end_token": "<mask:5>",
        "header_start_token": "<mask:6>", "header_end_token": "<mask:7>",
        "additional_special_tokens": None, "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 131072,
        "padding_side": "left", "split_special_tokens": False,
        "tokenizer_class": "Ernie4_5Tokenizer",
    }


def _dump(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def write_tiny_model(out_dir: str | Path, spec: TinyModelSpec) -> Path:
    import sentencepiece as spm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sp_bytes = build_sentencepiece(min(spec.vocab_size, _MAX_SPM_VOCAB), spec.seed)
    (out / "tokenizer.model").write_bytes(sp_bytes)
    sp = spm.SentencePieceProcessor(model_proto=sp_bytes)
    added = {p: sp.piece_to_id(p) for p in SPECIAL_PIECES}
    eos_ids = [2, added["<|end_of_sentence|>"]]
    _dump(out / "config.json", _config(spec, eos_ids))
    _dump(out / "generation_config.json", {
        "bos_token_id": 1, "eos_token_id": eos_ids, "pad_token_id": 0,
        "do_sample": True, "top_p": 0.8, "temperature": 0.8, "repetition_penalty": 1.0,
        "frequency_penalty": 0.0, "presence_penalty": 0.0,
    })
    _dump(out / "tokenizer_config.json", _tokenizer_config())
    _dump(out / "special_tokens_map.json", {
        k: _tokenizer_config()[k]
        for k in ("bos_token", "eos_token", "pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
    })
    _dump(out / "added_tokens.json", added)
    weights = _random_weights(spec)
    if spec.layout == "paddle":
        weights = to_paddle_layout(weights)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt" if spec.layout == "pt" else "np"})
    (out / "model.safetensors").chmod(0o644)  # safetensors writes 0600; images run as another uid
    return out
