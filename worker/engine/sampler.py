"""Token sampling on the host, in NumPy, from float32 logits [S, V] of the sampling sequences.

Order of operations per row (FastDeploy's and vLLM's):
1. logprobs, when requested, are the RAW model log-softmax (vLLM's default): what the model
   believed, before the grammar, penalties and filters.
2. the grammar's token mask (guided decoding), on the constrained rows only.
3. penalties: repetition (HF/vLLM: over prompt+output tokens, logit>0 ? logit/p : logit*p),
   then frequency and presence (OpenAI: over output tokens, logit -= f*count + p*(count>0)).
4. masks: bad words; EOS (unless ignore_eos) and stop_token_ids while output < min_tokens.
   A constrained row they would empty keeps the grammar's tokens instead.
5. temperature 0 -> argmax (ties -> lowest id); else logits/T, top_k, min_p (relative to the
   most probable token), top_p (smallest set of mass >= top_p), then one draw.

Cost: a vocabulary row is ~100k wide, so a row is not sorted, partitioned or exponentiated in
float64 whole (each costs ~1 ms a row; only a flat row under top_p, whose nucleus is most of
the vocabulary, still is). Rows under top_k or min_p find their few candidates with threshold
passes over the logits; the others take one float32 exp pass and finish in float64 on the
tokens that matter. Greedy rows are one argmax over the batch. Each row is worked on alone,
so a seeded row's draw cannot depend on its neighbours.

Randomness: a row with a seed draws from its own generator seeded by (seed, completion index,
output position), so its text does not depend on what else is in the batch; rows without a
seed draw from the sampler's process generator.
"""

from dataclasses import dataclass

import numpy as np

from worker.engine.scheduler import SampledTokens
from worker.engine.sequence import Sequence
from worker.engine.token_mask import TokenMask
from worker.sampling_params import SamplingParams

# top_p first tries the tokens within these ratios of the most probable one: exact whenever
# they already hold the mass, and it spares a full-vocabulary sort for all but flat rows.
_TOP_P_PREFILTER_RATIOS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# The k most probable tokens are looked for within these distances below the top logit (in
# units of temperature), narrowest first. Past the last, a token's probability is < e^-50 of
# the top one's: even 500,000 such tokens hold less than float64 can tell from zero beside
# it (2^-53), so sampling never needs them.
_TOP_K_WINDOWS = (2.0, 5.0, 10.0, 20.0, 50.0)
# top-k logprobs are exact: the same windows on the raw logits, then the whole row.
_LOGPROB_WINDOWS = (2.0, 5.0, 10.0, 20.0, 50.0, np.inf)
# A draw over a whole row finds its block of this many tokens first, then the token in it.
_DRAW_BLOCK = 1024


def apply_penalties(row: np.ndarray, seq: Sequence) -> None:
    """Repetition, frequency and presence penalties, in place on one row of logits."""
    sp = seq.sampling_params
    if sp.repetition_penalty != 1.0:
        ids = np.unique(np.asarray(seq.token_ids, dtype=np.int64))
        vals = row[ids]
        row[ids] = np.where(vals > 0, vals / sp.repetition_penalty, vals * sp.repetition_penalty)
    if (sp.frequency_penalty != 0.0 or sp.presence_penalty != 0.0) and seq.num_output_tokens:
        ids, counts = np.unique(np.asarray(seq.output_token_ids, dtype=np.int64), return_counts=True)
        # ids are unique, so the presence penalty lands once per token that appeared.
        row[ids] -= sp.frequency_penalty * counts + sp.presence_penalty


def apply_masks(row: np.ndarray, seq: Sequence, eos_token_ids: frozenset[int]) -> None:
    sp = seq.sampling_params
    if sp.bad_words_token_ids:
        row[sp.bad_words_token_ids] = -np.inf
    if seq.num_output_tokens < sp.min_tokens:
        banned = list(sp.stop_token_ids) + ([] if sp.ignore_eos else list(eos_token_ids))
        if banned:
            row[banned] = -np.inf


def _needs_processing(seq: Sequence) -> bool:
    sp = seq.sampling_params
    return bool(
        sp.repetition_penalty != 1.0
        or sp.frequency_penalty != 0.0
        or sp.presence_penalty != 0.0
        or sp.bad_words_token_ids
        or seq.num_output_tokens < sp.min_tokens
    )


def row_generator(sp: SamplingParams, seq: Sequence) -> np.random.Generator:
    return np.random.default_rng([sp.seed, seq.index, seq.num_output_tokens])


def filter_probs(row: np.ndarray, sp: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """Candidate token ids (ascending) and their renormalised probabilities, float64."""
    top_k = _top_k(row, sp)
    if top_k or sp.min_p > 0.0:
        cand, weights = _bounded(row, sp.temperature, top_k, sp.min_p)
        return _top_p(cand, weights, weights.sum(), sp.top_p)
    weights = _scaled_exp(row, sp.temperature)
    if sp.top_p < 1.0:
        return _dense_top_p(row, weights, sp)
    return np.arange(row.shape[0]), weights / weights.sum(dtype=np.float64)


def _top_k(row: np.ndarray, sp: SamplingParams) -> int:
    """top_k, 0 when it keeps the whole row anyway."""
    return sp.effective_top_k if sp.effective_top_k < row.shape[0] else 0


def _scaled_exp(row: np.ndarray, temperature: float) -> np.ndarray:
    """exp((x - max) / T) in float32: the one full-row exponential a dense row takes."""
    shifted = row - row.max()
    shifted *= np.float32(1.0 / temperature)
    return np.exp(shifted, out=shifted)


def _bounded(row: np.ndarray, temperature: float, top_k: int, min_p: float) -> tuple[np.ndarray, np.ndarray]:
    """top_k and/or min_p: the few candidates (ascending) and their unnormalised float64 weights."""
    top = float(row.max())
    if min_p > 0.0:  # p >= min_p * p_max  <=>  x >= top + T ln(min_p); a little slack, then exact
        floor = top + temperature * (np.log(min_p) - 1e-3) - 1e-5 * (abs(top) + 1.0)
    else:
        floor = _window_floor(row, top, top_k, temperature, _TOP_K_WINDOWS)
    cand = np.flatnonzero(row >= floor)
    if top_k and cand.shape[0] > top_k:
        cand = np.sort(cand[np.argpartition(-row[cand], top_k - 1)[:top_k]])
    logits = row[cand].astype(np.float64) / temperature
    weights = np.exp(logits - logits.max())
    if min_p > 0.0:
        keep = weights >= min_p * weights.max()
        cand, weights = cand[keep], weights[keep]
    return cand, weights


def _window_floor(row: np.ndarray, top: float, k: int, scale: float, windows: tuple[float, ...]) -> float:
    """The narrowest `top - w * scale` that at least k entries of the row reach (or the widest)."""
    for w in windows:
        floor = top - w * scale
        if np.count_nonzero(row >= floor) >= k:
            break
    return floor


def _dense_top_p(row: np.ndarray, weights: np.ndarray, sp: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """top_p over the whole row: the prefix lies among the most probable tokens, which are
    weighted again in float64; the float32 weights of the rest only add to the total."""
    total = weights.sum(dtype=np.float64)
    for ratio in _TOP_P_PREFILTER_RATIOS:
        head = np.flatnonzero(weights >= ratio)
        if weights[head].sum(dtype=np.float64) >= sp.top_p * total * (1 + 1e-6):  # margin: float32
            break
    else:  # a flat row: every token may be needed
        head = np.arange(row.shape[0])
    exact = np.exp((row[head].astype(np.float64) - float(row.max())) / sp.temperature)
    total += exact.sum() - weights[head].sum(dtype=np.float64)
    return _top_p(head, exact, total, sp.top_p)


def _top_p(cand: np.ndarray, weights: np.ndarray, total: float, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest set of the most probable candidates holding top_p of `total`, renormalised."""
    if top_p < 1.0:
        order = np.argsort(-weights, kind="stable")
        ranked = weights[order]
        # Keep a token while the mass before it is below top_p: the most probable always stays.
        keep = (np.cumsum(ranked) - ranked) < top_p * total
        keep[0] = True
        chosen = np.sort(order[keep])
        cand, weights = cand[chosen], weights[chosen]
    return cand, weights / weights.sum()


def draw(cand: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> int:
    cdf = np.cumsum(probs)
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return int(cand[min(i, cand.shape[0] - 1)])


def draw_dense(row: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """One token of the whole row at `temperature`, without a cumulative sum over the row: the
    block of _DRAW_BLOCK tokens holding the draw first, then the token inside it."""
    vocab = row.shape[0]
    weights = np.zeros(-(-vocab // _DRAW_BLOCK) * _DRAW_BLOCK, dtype=np.float32)
    weights[:vocab] = _scaled_exp(row, temperature)
    block_mass = weights.reshape(-1, _DRAW_BLOCK).sum(axis=1, dtype=np.float64)
    cdf = np.cumsum(block_mass)
    target = rng.random() * cdf[-1]
    b = _last_positive(block_mass, np.searchsorted(cdf, target, side="right"))
    block = weights[b * _DRAW_BLOCK : (b + 1) * _DRAW_BLOCK]
    inside = np.searchsorted(np.cumsum(block, dtype=np.float64), target - (cdf[b - 1] if b else 0.0), side="right")
    return b * _DRAW_BLOCK + _last_positive(block, inside)


def _last_positive(weights: np.ndarray, i: int) -> int:
    """i, or when rounding put it past the end or on a zero weight, the last positive one before."""
    i = min(int(i), weights.shape[0] - 1)
    return i if weights[i] > 0 else int(np.flatnonzero(weights[: i + 1] > 0)[-1])


def sample_row(row: np.ndarray, sp: SamplingParams, rng: np.random.Generator) -> int:
    """One token from a row of (penalised) logits under temperature, top_k, min_p, top_p."""
    if not _top_k(row, sp) and sp.min_p == 0.0 and sp.top_p >= 1.0:
        return draw_dense(row, sp.temperature, rng)
    return draw(*filter_probs(row, sp), rng)


def top_logprobs(raw: np.ndarray, token_id: int, k: int) -> dict[int, float]:
    """The top-k token ids with their raw logprobs (descending), then the sampled token if not
    among them. log Z takes one float32 exp pass (error ~1e-7), the top k threshold passes."""
    top = float(raw.max())
    log_z = top + float(np.log(np.exp(raw - top).sum(dtype=np.float64)))
    out: dict[int, float] = {}
    if k > 0:
        cand = np.flatnonzero(raw >= _window_floor(raw, top, k, 1.0, _LOGPROB_WINDOWS))
        if cand.shape[0] > k:
            cand = cand[np.argpartition(-raw[cand], k - 1)[:k]]
        out = {int(t): float(raw[t]) - log_z for t in cand[np.lexsort((cand, -raw[cand]))]}
    out.setdefault(int(token_id), float(raw[token_id]) - log_z)
    return out


def _keep_grammar_alive(logits: np.ndarray, raw: np.ndarray, grammar: TokenMask, processed: list[int]) -> None:
    """A constrained row whose every allowed token was banned (bad_words, or EOS under
    min_tokens) samples under the grammar alone: the grammar's rule wins, never a dead row."""
    banned = set(processed)
    for i, row in enumerate(grammar.rows):
        if row in banned and not np.isfinite(logits[row]).any():
            logits[row] = raw[row]
            TokenMask([row], grammar.bits[i : i + 1]).apply(logits)


@dataclass
class Sampler:
    eos_token_ids: frozenset[int] = frozenset()
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, logits: np.ndarray, seqs: list[Sequence], grammar: TokenMask | None = None) -> SampledTokens:
        assert logits.ndim == 2 and logits.shape[0] == len(seqs), f"logits {logits.shape} for {len(seqs)} seqs"
        raw = logits  # logprobs are the model's, before penalties and the grammar
        processed = [i for i, s in enumerate(seqs) if _needs_processing(s)]
        if processed or grammar is not None:
            logits = logits.astype(np.float32, copy=True)
            if grammar is not None:
                grammar.apply(logits)  # first: penalties and filters then see the allowed tokens only
            for i in processed:
                apply_penalties(logits[i], seqs[i])
                apply_masks(logits[i], seqs[i], self.eos_token_ids)
            if grammar is not None and processed:
                _keep_grammar_alive(logits, raw, grammar, processed)
        token_ids = self._greedy(logits, seqs)
        for i, seq in enumerate(seqs):
            sp = seq.sampling_params
            if not sp.greedy and sp.top_k != 1:
                token_ids[i] = sample_row(logits[i], sp, row_generator(sp, seq) if sp.seed is not None else self.rng)
        logprobs = None
        if any(s.sampling_params.logprobs is not None for s in seqs):
            logprobs = [None if s.sampling_params.logprobs is None
                        else top_logprobs(raw[i], int(token_ids[i]), s.sampling_params.logprobs)
                        for i, s in enumerate(seqs)]
        return SampledTokens(token_ids=token_ids, logprobs=logprobs)

    @staticmethod
    def _greedy(logits: np.ndarray, seqs: list[Sequence]) -> np.ndarray:
        """Argmax of every row that is greedy or top_k=1 (the same thing); others are filled later."""
        token_ids = np.zeros(len(seqs), dtype=np.int64)
        rows = [i for i, s in enumerate(seqs) if s.sampling_params.greedy or s.sampling_params.top_k == 1]
        if len(rows) == len(seqs):
            return logits.argmax(axis=1).astype(np.int64)
        if rows:
            token_ids[rows] = logits[rows].argmax(axis=1)
        return token_ids
