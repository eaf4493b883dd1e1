"""Guided decoding's cost per decode step (issue 15): 64 constrained rows over the 0.3B model's
103,424-token vocabulary (JSON schema, regex, choice) against 64 unconstrained rows, in the
same run, on the same logits and the same greedy sampler.

A step is what the engine adds around the forward pass: the token mask of the constrained
rows (llguidance, all rows together), the sampler with the mask applied, and feeding the
sampled tokens back to the matchers. Steps are timed one by one while the matchers walk
through their grammars, so the states are mid-generation (inside strings, between keys), not
only the first token; only steps with all 64 rows still constrained count.

The vocabulary is synthetic (no tokenizer of that size ships with any package here):
256 byte tokens, then deterministic word pieces (half with a leading space), digits,
punctuation runs and CJK characters, which is how a real BPE vocabulary is made up.
"""

import time

import numpy as np
from pydantic import BaseModel

from worker.engine.grammar_vocab import ll_tokenizer
from worker.engine.guided import GuidedDecoder
from worker.engine.sampler import Sampler
from worker.engine.sequence import Sequence
from worker.guided_decoding import GuidedDecodingParams
from worker.sampling_params import SamplingParams

ROWS = 64
_NUM_SPECIAL = 16  # ids 0..15: <unk>, <s>, </s> (EOS), ... as in ERNIE's vocabulary
_SCHEMA = {  # an extraction schema whose array cannot end soon, so rows stay constrained
    "type": "array", "minItems": 1000,
    "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "pattern": "^[a-z]+@[a-z]+\\.com$"},
        "tags": {"type": "array", "items": {"enum": ["new", "vip", "churned"]}},
    }, "required": ["name", "age", "email"], "additionalProperties": False},
}
CONSTRAINTS = {  # name -> (constraint, steps walked before timing, steps timed)
    "json schema": (GuidedDecodingParams(json=_SCHEMA), 4, 24),
    "regex": (GuidedDecodingParams(regex=r"([A-Z][a-z]+ [0-9]{1,4}, )+"), 4, 24),
    "choice": (GuidedDecodingParams(choice=["positive", "negative", "neutral", "mixed"]), 0, 3),
}


class GuidedResult(BaseModel):
    constraint: str
    rows: int
    vocab_size: int
    steps: int
    min_ms: float
    median_ms: float
    unconstrained_min_ms: float
    unconstrained_median_ms: float

    @property
    def extra_ms(self) -> float:
        return self.median_ms - self.unconstrained_median_ms

    @property
    def ratio(self) -> float:
        return self.median_ms / self.unconstrained_median_ms


class GuidedReport(BaseModel):
    vocab_build_seconds: float  # handing the vocabulary to llguidance, once per model
    results: list[GuidedResult]


def synthetic_vocabulary(vocab_size: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    tokens = [f"<special_{i}>".encode() for i in range(_NUM_SPECIAL)] + [bytes([b]) for b in range(256)]
    seen, letters = set(tokens), np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    punctuation = np.frombuffer(b'{}[]":,.!?()-_ \n0123456789', dtype=np.uint8)
    while len(tokens) < vocab_size:
        r = rng.random()
        if r < 0.05:
            token = chr(0x4E00 + int(rng.integers(20000))).encode() * int(rng.integers(1, 3))
        elif r < 0.12:
            token = rng.choice(punctuation, size=int(rng.integers(1, 4))).tobytes()
        else:
            word = rng.choice(letters, size=int(rng.integers(2, 11))).tobytes()
            word = word.capitalize() if rng.random() < 0.15 else word
            token = (b" " if rng.random() < 0.5 else b"") + word
        if token not in seen:
            seen.add(token)
            tokens.append(token)
    return tokens


def greedy_encoder(tokens: list[bytes]):
    """Longest match first over `tokens`: how llguidance tokenizes forced text with them."""
    ids = {t: i for i, t in enumerate(tokens) if i >= _NUM_SPECIAL}
    longest = max(map(len, ids))

    def encode(text: str) -> list[int]:
        data, out, i = text.encode(), [], 0
        while i < len(data):
            n = next(n for n in range(min(longest, len(data) - i), 0, -1) if data[i : i + n] in ids)
            out.append(ids[data[i : i + n]])
            i += n
        return out

    return encode


def _logits(vocab_size: int, count: int = 3) -> list[np.ndarray]:
    """A few steps' logits, shaped like a model's (a normal tail, a few likely tokens), cycled
    so that greedy rows do not pick the same token every step."""
    rng = np.random.default_rng(1)
    steps = []
    for _ in range(count):
        logits = rng.normal(0.0, 2.0, size=(ROWS, vocab_size)).astype(np.float32)
        likely = rng.integers(0, vocab_size, size=(ROWS, 8))
        logits[np.arange(ROWS)[:, None], likely] = rng.uniform(12.0, 20.0, size=likely.shape)
        steps.append(logits)
    return steps


def _step(decoder: GuidedDecoder, sampler: Sampler, logits: np.ndarray, seqs: list[Sequence]) -> list[Sequence]:
    """What the engine does around the forward pass; returns the sequences whose grammar ended."""
    sampled = sampler(logits, seqs, decoder.mask(seqs))
    for seq, token in zip(seqs, sampled.token_ids):
        seq.append_token(int(token))
    return decoder.advance(seqs)


def _timed_steps(decoder, sampler, logits: list[np.ndarray], params: SamplingParams, warmup: int,
                 steps: int) -> list[float]:
    """Seconds of each step after `warmup`, while all rows are constrained (a row whose
    grammar ends, e.g. on a drawn EOS, ends the episode after its step)."""
    seqs = [Sequence(str(i), [1, 2, 3], params, index=i) for i in range(ROWS)]
    for seq in seqs:
        decoder.add(seq)
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        ended = _step(decoder, sampler, logits[step % len(logits)], seqs)
        if step >= warmup:
            times.append(time.perf_counter() - start)
        if ended:
            break
    for seq in seqs:
        decoder.release(seq)
    return times


def run_guided_bench(vocab_size: int, repeats: int) -> GuidedReport:
    start = time.perf_counter()
    tokens = synthetic_vocabulary(vocab_size)
    vocab = ll_tokenizer(tokens, [2], range(_NUM_SPECIAL), greedy_encoder(tokens))
    build_s = time.perf_counter() - start
    decoder, sampler, logits = GuidedDecoder(lambda: vocab), Sampler(seed=0), _logits(vocab_size)
    free = SamplingParams(temperature=0)
    results = []
    for name, (constraint, warmup, steps) in CONSTRAINTS.items():
        params = SamplingParams(temperature=0, guided_decoding=constraint)
        guided_s, free_s = [], []
        for _ in range(repeats):  # interleaved, so both see the same load on a shared host
            guided_s += _timed_steps(decoder, sampler, logits, params, warmup, steps)
            free_s += _timed_steps(decoder, sampler, logits, free, warmup, steps)
        results.append(GuidedResult(
            constraint=name, rows=ROWS, vocab_size=vocab_size, steps=len(guided_s),
            min_ms=1e3 * min(guided_s), median_ms=1e3 * float(np.median(guided_s)),
            unconstrained_min_ms=1e3 * min(free_s), unconstrained_median_ms=1e3 * float(np.median(free_s)),
        ))
    return GuidedReport(vocab_build_seconds=build_s, results=results)
