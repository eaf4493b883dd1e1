"""Continuous batching under a token budget, with chunked prefill and preemption by recompute.

Each step: RUNNING sequences first, oldest first (decodes and unfinished prefill chunks),
then WAITING ones in FIFO order while the token budget, the sequence slots and the free blocks
allow. A prompt larger than the remaining budget gets a chunk. When a running sequence needs
a block and none is free, the NEWEST running sequence is preempted: its blocks are freed and it
goes back to the front of the queue, to be recomputed later (prompt and generated tokens,
often largely from the prefix cache). A step that preempted admits nothing new.

Blocks a step fills are registered in the prefix cache when the step is scheduled, not after
it ran, so the requests admitted together in one step share their common prefix (see
block_manager). This relies on the order of a step: running sequences are scheduled (and
preempted) first, oldest first, and a victim is always one not yet scheduled in this step, so
no block registered in this step is freed before the step runs; admission (the only place
that looks the cache up) comes last and only in a step that preempted nothing.
"""

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from worker.engine.block_manager import BlockManager, num_blocks_for
from worker.engine.sequence import Sequence, SequenceStatus
from worker.engine.stop_checker import check_stop
from worker.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    num_blocks: int
    block_size: int
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    eos_token_ids: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        # The sizes come validated from EngineArgs, num_blocks from the model runner.
        # One sequence must always be able to reach max_model_len once the others are preempted,
        # or the scheduler could preempt forever.
        if num_blocks_for(self.max_model_len, self.block_size) > self.num_blocks:
            raise ValueError(
                f"num_blocks={self.num_blocks} x block_size={self.block_size} cannot hold one "
                f"sequence of max_model_len={self.max_model_len}"
            )
        if not self.enable_chunked_prefill and self.max_num_batched_tokens < self.max_model_len:
            raise ValueError("max_num_batched_tokens must be >= max_model_len without chunked prefill")


@dataclass(frozen=True)
class ScheduledSequence:
    seq: Sequence
    num_new_tokens: int
    # This step reaches the end of the known tokens, so its logits are sampled. Fixed at
    # scheduling time: postprocess moves the sequence on.
    samples: bool = field(init=False)
    # Positions whose logits give prompt logprobs not collected yet (position p: token p + 1).
    prompt_logprob_positions: range = field(init=False)

    def __post_init__(self) -> None:
        seq = self.seq
        assert self.num_new_tokens > 0, f"seq {seq.seq_id}: empty schedule"
        end = seq.num_computed_tokens + self.num_new_tokens
        object.__setattr__(self, "samples", end == seq.num_tokens)
        positions = range(0)
        if seq.needs_prompt_logprobs:  # from the first one missing to the last prompt token's parent
            positions = range(max(seq.num_computed_tokens, len(seq.prompt_logprobs) - 1),
                              min(end, seq.num_prompt_tokens - 1))
        object.__setattr__(self, "prompt_logprob_positions", positions)


@dataclass
class SchedulerOutput:
    scheduled: list[ScheduledSequence] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_batched_tokens(self) -> int:
        return sum(s.num_new_tokens for s in self.scheduled)

    @property
    def sampling_seqs(self) -> list[Sequence]:
        return [s.seq for s in self.scheduled if s.samples]


@dataclass
class SampledTokens:
    """What the sampler hands back for the sequences that sampled, in scheduling order."""

    token_ids: np.ndarray  # [S] int64
    logprobs: list[dict[int, float] | None] | None = None  # per row, when requested


class Scheduler:
    def __init__(self, config: SchedulerConfig):
        self.config = config
        self.block_manager = BlockManager(config.num_blocks, config.block_size, config.enable_prefix_caching)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # admission order: the last is the newest

    # -- queue ----------------------------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        """Queue a sequence; its prompt was checked against max_model_len by the engine."""
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def num_unfinished(self) -> int:
        return len(self.waiting) + len(self.running)

    # -- one step -------------------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self._schedule_running(out, self.config.max_num_batched_tokens)
        if not out.preempted:
            self._schedule_waiting(out, budget)
        now = time.time()
        for s in out.scheduled:
            if s.seq.first_scheduled_time is None:
                s.seq.first_scheduled_time = now
        return out

    def _schedule_running(self, out: SchedulerOutput, budget: int) -> int:
        bm = self.block_manager
        for seq in list(self.running):
            if budget == 0:
                break
            if seq.status is not SequenceStatus.RUNNING:  # preempted earlier in this loop
                continue
            num_new = min(seq.num_uncomputed_tokens, budget)
            assert num_new > 0, f"running seq {seq.seq_id} has nothing to compute"
            while not bm.can_append(seq, num_new):
                victim = self.running[-1]
                # Newer than seq, so not scheduled yet: its blocks registered now are all computed.
                assert victim is seq or all(s.seq is not victim for s in out.scheduled)
                self._preempt(victim, out)
                if victim is seq:
                    break
            else:
                bm.append_slots(seq, num_new)
                self._add_scheduled(out, seq, num_new)
                budget -= num_new
        return budget

    def _schedule_waiting(self, out: SchedulerOutput, budget: int) -> None:
        bm = self.block_manager
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self.waiting[0]
            # A prefix-cache hit skips the positions whose logits give the prompt logprobs, so
            # a sequence still collecting them takes no hit (vLLM's choice, simpler than
            # recomputing cached blocks); its blocks still enter the cache for the others.
            computed = [] if seq.needs_prompt_logprobs else bm.get_computed_blocks(seq)
            remaining = seq.num_tokens - len(computed) * bm.block_size
            num_new = min(remaining, budget)
            if num_new < remaining and not self.config.enable_chunked_prefill:
                break
            if not bm.can_allocate(computed, seq.num_tokens - remaining + num_new):
                break
            self.waiting.popleft()
            bm.allocate(seq, computed, num_new)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            self._add_scheduled(out, seq, num_new)
            budget -= num_new

    def _add_scheduled(self, out: SchedulerOutput, seq: Sequence, num_new: int) -> None:
        # Registering before the step lets later admissions in this same step hit these blocks.
        self.block_manager.cache_full_blocks(seq, seq.num_computed_tokens + num_new)
        out.scheduled.append(ScheduledSequence(seq, num_new))

    def _preempt(self, seq: Sequence, out: SchedulerOutput) -> None:
        self.running.remove(seq)
        self.block_manager.free(seq)
        seq.status = SequenceStatus.WAITING
        seq.num_preemptions += 1
        self.waiting.appendleft(seq)
        out.preempted.append(seq)
        log.debug("preempted", request_id=seq.request_id, seq_id=seq.seq_id, num_tokens=seq.num_tokens)

    # -- after the model ran --------------------------------------------------------------

    def postprocess(self, scheduled: list[ScheduledSequence], sampled: SampledTokens) -> list[Sequence]:
        """Advance progress, append sampled tokens, stop; return the finished.

        Full blocks were already registered when the step was scheduled.
        """
        finished: list[Sequence] = []
        row = 0
        for s in scheduled:
            seq, samples = s.seq, s.samples
            seq.num_computed_tokens += s.num_new_tokens
            if not samples:
                continue
            logprobs = sampled.logprobs[row] if sampled.logprobs is not None else None
            seq.append_token(int(sampled.token_ids[row]), logprobs)
            row += 1
            reason = check_stop(seq, self.config.eos_token_ids, self.config.max_model_len)
            if reason is not None:
                self.finish(seq, reason)
                finished.append(seq)
        assert row == len(sampled.token_ids), f"{len(sampled.token_ids)} tokens for {row} sampling seqs"
        return finished

    def finish(self, seq: Sequence, reason: str | None) -> None:
        """End `seq` now (token stop, stop string found by the output processor, or abort).

        On a finished sequence it only corrects the reason: a stop string completed by the
        very token that hit max_tokens is a 'stop', not a 'length'.
        """
        if seq.is_finished:
            seq.finish_reason = reason
            return
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
            self.block_manager.free(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        seq.status = SequenceStatus.FINISHED
        seq.finish_reason = reason
