"""Token sampling on the host, in NumPy, from float32 logits [S, V] of the sampling sequences.

Order of operations per row (FastDeploy's and vLLM's):
1. logprobs, when requested, are the RAW model log-softmax (vLLM's default): what the model
   believed, before penalties and filters.
2. penalties: repetition (HF/vLLM: over prompt+output tokens, logit>0 ? logit/p : logit*p),
   then frequency and presence (OpenAI: over output tokens, logit -= f*count + p*(count>0)).
3. masks: bad words; EOS (unless ignore_eos) and stop_token_ids while output < min_tokens.
4. temperature 0 -> argmax (ties -> lowest id); else logits/T, top_k, min_p (relative to the
   most probable token), top_p (smallest set of mass >= top_p), then one draw.

Randomness: a row with a seed draws from its own generator seeded by (seed, completion index,
output position), so its text does not depend on what else is in the batch; rows without a
seed draw from the sampler's process generator.
"""

from dataclasses import dataclass

import numpy as np

from worker.engine.scheduler import SampledTokens
from worker.engine.sequence import Sequence
from worker.sampling_params import SamplingParams

# top_p first tries the tokens within these ratios of the most probable one: exact whenever
# they already hold the mass, and it spares a full-vocabulary sort for all but flat rows.
_TOP_P_PREFILTER_RATIOS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64, copy=False)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


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
    x = row.astype(np.float64) / sp.temperature
    k = sp.effective_top_k
    if 0 < k < x.shape[0]:
        cand = np.sort(np.argpartition(-x, k - 1)[:k])
    else:
        cand = np.arange(x.shape[0])
    logits = x[cand]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if sp.min_p > 0.0:
        keep = probs >= sp.min_p * probs.max()
        cand, probs = cand[keep], probs[keep] / probs[keep].sum()
    if sp.top_p < 1.0:
        cand, probs = _top_p(cand, probs, sp.top_p)
    return cand, probs


def _top_p(cand: np.ndarray, probs: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    pool = np.arange(probs.shape[0])
    for ratio in _TOP_P_PREFILTER_RATIOS:
        head = np.flatnonzero(probs >= probs.max() * ratio)
        if probs[head].sum() >= top_p:
            pool = head
            break
    order = pool[np.argsort(-probs[pool], kind="stable")]
    sorted_probs = probs[order]
    # Keep a token while the mass before it is below top_p: the most probable always stays.
    keep = (np.cumsum(sorted_probs) - sorted_probs) < top_p
    keep[0] = True
    chosen = np.sort(order[keep])
    kept = probs[chosen]
    return cand[chosen], kept / kept.sum()


def draw(cand: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> int:
    cdf = np.cumsum(probs)
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return int(cand[min(i, cand.shape[0] - 1)])


def top_logprobs(raw_logprobs: np.ndarray, token_id: int, k: int) -> dict[int, float]:
    """The top-k token ids with their logprobs (descending), then the sampled token if not among them."""
    out: dict[int, float] = {}
    if k > 0:
        top = np.argpartition(-raw_logprobs, k - 1)[:k]
        top = top[np.lexsort((top, -raw_logprobs[top]))]
        out = {int(t): float(raw_logprobs[t]) for t in top}
    out.setdefault(int(token_id), float(raw_logprobs[token_id]))
    return out


@dataclass
class Sampler:
    eos_token_ids: frozenset[int] = frozenset()
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, logits: np.ndarray, seqs: list[Sequence]) -> SampledTokens:
        assert logits.ndim == 2 and logits.shape[0] == len(seqs), f"logits {logits.shape} for {len(seqs)} seqs"
        raw_lp = {i: log_softmax(logits[i]) for i, s in enumerate(seqs) if s.sampling_params.logprobs is not None}
        processed = [i for i, s in enumerate(seqs) if _needs_processing(s)]
        if processed:
            logits = logits.astype(np.float32, copy=True)
            for i in processed:
                apply_penalties(logits[i], seqs[i])
                apply_masks(logits[i], seqs[i], self.eos_token_ids)
        token_ids = self._greedy(logits, seqs)
        for i, seq in enumerate(seqs):
            sp = seq.sampling_params
            if not sp.greedy and sp.top_k != 1:
                rng = row_generator(sp, seq) if sp.seed is not None else self.rng
                token_ids[i] = draw(*filter_probs(logits[i], sp), rng)
        logprobs = None
        if raw_lp:
            logprobs = [
                top_logprobs(raw_lp[i], int(token_ids[i]), seqs[i].sampling_params.logprobs) if i in raw_lp else None
                for i in range(len(seqs))
            ]
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
