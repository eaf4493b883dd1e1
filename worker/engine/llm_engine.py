"""LLMEngine: requests in, continuous batching steps, finished `RequestOutput`s out.

One step: the scheduler picks the sequences and token counts, `build_input_batch` makes the
flat batch, the model runner computes logits of the sampling rows, the sampler picks tokens,
the scheduler advances and applies token stops, and the detokenizers extend the text and
apply stop strings (a sequence without stop strings is decoded once, when it ends).
Streaming callers (`worker run-batch`) add requests as they read them and collect what each
step finishes; `LLM` wraps it for whole lists.
"""

import dataclasses
import functools
import time
from dataclasses import dataclass

from worker.engine.detokenizer import IncrementalDetokenizer
from worker.engine.engine_args import EngineArgs
from worker.engine.grammar_vocab import from_tokenizer
from worker.engine.guided import GuidedDecoder
from worker.engine.input_batch import build_input_batch
from worker.engine.model_runner import ModelRunner
from worker.engine.prompt_logprobs import record_prompt_logprobs
from worker.engine.request_errors import InvalidRequestError, PromptTooLongError
from worker.engine.sampler import Sampler
from worker.engine.scheduler import Scheduler, SchedulerConfig
from worker.engine.sequence import Sequence
from worker.guided_decoding import GuidedDecodingError
from worker.logs import get_logger
from worker.outputs import CompletionOutput, EngineStats, RequestMetrics, RequestOutput
from worker.platform import select_platform
from worker.sampling_params import SamplingParams
from worker.tokenizer import Tokenizer

log = get_logger(__name__)


@dataclass
class RequestState:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    seqs: list[Sequence]
    detokenizers: list[IncrementalDetokenizer]
    metrics: RequestMetrics

    @property
    def finished(self) -> bool:
        return all(seq.is_finished for seq in self.seqs)


class LLMEngine:
    def __init__(self, args: EngineArgs):
        self.args = args
        platform = select_platform(args.dtype)
        self.tokenizer = Tokenizer.from_pretrained(args.model)
        self.model_runner = ModelRunner(
            args.model,
            platform,
            block_size=args.block_size,
            num_blocks=args.num_gpu_blocks_override,
            max_num_batched_tokens=args.token_budget,
            attention_backend=args.attention_backend,
            kv_cache_memory_bytes=args.kv_cache_memory_bytes,
        )
        model_config = self.model_runner.config
        self.max_model_len = min(args.max_model_len, model_config.max_position_embeddings)
        self.vocab_size = model_config.vocab_size
        eos = frozenset(self.tokenizer.eos_token_ids) | frozenset(model_config.eos_token_ids)
        self.scheduler = Scheduler(
            SchedulerConfig(
                max_num_seqs=args.max_num_seqs,
                max_num_batched_tokens=args.token_budget,
                max_model_len=self.max_model_len,
                num_blocks=self.model_runner.num_blocks,
                block_size=args.block_size,
                enable_prefix_caching=args.enable_prefix_caching,
                eos_token_ids=eos,
            )
        )
        self.sampler = Sampler(eos_token_ids=eos, seed=args.seed)
        self.guided = GuidedDecoder(functools.partial(from_tokenizer, self.tokenizer, self.vocab_size, sorted(eos)))
        self.requests: dict[str, RequestState] = {}

    # -- requests -------------------------------------------------------------------------

    def add_request(
        self,
        request_id: str,
        prompt: str | None,
        sampling_params: SamplingParams,
        prompt_token_ids: list[int] | None = None,
    ) -> None:
        """Queue a request; raises InvalidRequestError when it can never be served."""
        if request_id in self.requests:
            raise InvalidRequestError(f"request {request_id}: duplicate request id")
        if prompt_token_ids is None:
            if prompt is None:
                raise InvalidRequestError(f"request {request_id}: give a prompt or prompt_token_ids")
            prompt_token_ids = self.tokenizer.encode(prompt)
        self._check_prompt(request_id, prompt_token_ids)
        params = self._resolve_bad_words(sampling_params)
        seqs = [Sequence(request_id, prompt_token_ids, params, index=i) for i in range(params.n)]
        self._add_matchers(request_id, seqs)
        for seq in seqs:
            self.scheduler.add(seq)
        self.requests[request_id] = RequestState(
            request_id=request_id,
            prompt=prompt,
            prompt_token_ids=list(prompt_token_ids),
            seqs=seqs,
            detokenizers=[
                IncrementalDetokenizer(self.tokenizer, params.stop or [], params.skip_special_tokens) for _ in seqs
            ],
            metrics=RequestMetrics(arrival_time=seqs[0].arrival_time, model_forward_time=0.0),
        )

    def _check_prompt(self, request_id: str, ids: list[int]) -> None:
        if not ids:
            raise InvalidRequestError(f"request {request_id}: the prompt is empty")
        if len(ids) >= self.max_model_len:
            raise PromptTooLongError(
                f"request {request_id}: prompt has {len(ids)} tokens, max_model_len is "
                f"{self.max_model_len} (prompt + at least one output token)"
            )
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise InvalidRequestError(f"request {request_id}: token id {bad[0]} outside [0, {self.vocab_size})")

    def _add_matchers(self, request_id: str, seqs: list[Sequence]) -> None:
        try:
            for seq in seqs:
                self.guided.add(seq)
        except GuidedDecodingError as e:
            for seq in seqs:
                self.guided.release(seq)
            raise InvalidRequestError(f"request {request_id}: {e}") from e

    def _resolve_bad_words(self, params: SamplingParams) -> SamplingParams:
        """Bad words that are one token (bare or after a space) are banned; longer ones are
        skipped with a warning, as FastDeploy does."""
        if not params.bad_words:
            return params
        ids: set[int] = set(params.bad_words_token_ids)
        for word in params.bad_words:
            found = [t for t in (self.tokenizer.encode(v, add_special_tokens=False) for v in (word, " " + word)) if len(t) == 1]
            if not found:
                log.warning("bad word is not a single token; skipped", bad_word=word)
            ids.update(t[0] for t in found)
        return dataclasses.replace(params, bad_words_token_ids=sorted(ids))

    def abort_request(self, request_id: str) -> None:
        """Drop a request that has not finished and free its blocks."""
        state = self.requests.pop(request_id)
        for seq in state.seqs:
            self.scheduler.finish(seq, None)

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    @property
    def num_unfinished_requests(self) -> int:
        return len(self.requests)

    def stats(self) -> EngineStats:
        running = {seq.request_id for seq in self.scheduler.running}
        blocks = self.scheduler.block_manager
        return EngineStats(num_requests_running=len(running), num_requests_waiting=len(self.requests) - len(running),
                           kv_blocks_used=blocks.num_blocks - blocks.num_free_blocks, kv_blocks_total=blocks.num_blocks)

    # -- one step -------------------------------------------------------------------------

    def step(self) -> list[RequestOutput]:
        """Run one engine step; return the requests that finished in it, in no set order."""
        out = self.scheduler.schedule()
        if not out.scheduled:
            assert not self.scheduler.has_unfinished(), "requests are waiting but nothing was scheduled"
            return []
        batch = build_input_batch(out.scheduled, self.args.block_size)
        start = time.perf_counter()
        logits = self.model_runner.execute(batch)
        forward_time = time.perf_counter() - start
        num_sampled = len(batch.sample_indices)
        if logits.shape[0] > num_sampled:  # before postprocess moves the sequences on
            record_prompt_logprobs(out.scheduled, logits[num_sampled:])
            logits = logits[:num_sampled]
        sampling_seqs = out.sampling_seqs
        sampled = self.sampler(logits, sampling_seqs, self.guided.mask(sampling_seqs))
        self.scheduler.postprocess(out.scheduled, sampled)
        for seq in self.guided.advance(sampling_seqs):
            self.scheduler.finish(seq, "stop")  # the grammar is complete: nothing else may follow
        touched: dict[str, RequestState] = {}
        for scheduled in out.scheduled:
            state = self.requests[scheduled.seq.request_id]
            state.metrics.model_forward_time += forward_time
            touched[state.request_id] = state
        for seq in sampling_seqs:
            self._detokenize(self.requests[seq.request_id], seq)
        return [self._finish(state) for state in touched.values() if state.finished]

    def _detokenize(self, state: RequestState, seq: Sequence) -> None:
        detokenizer = state.detokenizers[seq.index]
        if not detokenizer.stop and not seq.is_finished:
            # No stop string to watch for and outputs are only returned finished: decode the text
            # once at the end (the same text, the detokenizer's contract) instead of twice a token.
            return
        matched_stop = detokenizer.update(seq.output_token_ids, final=seq.is_finished)
        if matched_stop is not None:
            self.scheduler.finish(seq, "stop")  # wins over "length" reached by the same token

    def _finish(self, state: RequestState) -> RequestOutput:
        del self.requests[state.request_id]
        seqs = state.seqs
        for seq in seqs:  # ended by a stop string, after the matcher last saw it
            self.guided.release(seq)
        metrics = state.metrics
        metrics.inference_start_time = min(s.first_scheduled_time for s in seqs if s.first_scheduled_time)
        metrics.first_token_time = min((s.first_token_time for s in seqs if s.first_token_time), default=None)
        metrics.time_in_queue = metrics.inference_start_time - metrics.arrival_time
        metrics.model_execute_time = time.time() - metrics.inference_start_time
        outputs = [
            CompletionOutput(
                index=seq.index,
                send_idx=seq.num_output_tokens,
                token_ids=seq.output_token_ids,
                text=detok.text,
                finish_reason=seq.finish_reason,
                logprobs=seq.output_logprobs,
                cumulative_logprob=seq.cumulative_logprob,
            )
            for seq, detok in zip(seqs, state.detokenizers)
        ]
        return RequestOutput(
            request_id=state.request_id,
            prompt=state.prompt,
            prompt_token_ids=state.prompt_token_ids,
            outputs=outputs,
            finished=True,
            metrics=metrics,
            num_cached_tokens=min(seq.num_cached_tokens for seq in seqs),
            prompt_logprobs=seqs[0].prompt_logprobs,
        )
