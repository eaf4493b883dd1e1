"""A test-only engine double for the pipeline's ordering and checkpoint logic (the real engine
is used by the end-to-end tests). It finishes requests out of order, over several steps."""

from worker.outputs import CompletionOutput, EngineStats, RequestOutput


class ByteTokenizer:
    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode(errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return bytes([token_id])

    def apply_chat_template(self, messages, add_generation_prompt=True, **kw) -> str:
        return "|".join(m["content"] for m in messages)


class EngineDouble:
    def __init__(self, max_model_len: int = 64, fail_after_steps: int | None = None):
        self.tokenizer = ByteTokenizer()
        self.max_model_len = max_model_len
        self.pending: dict[str, tuple[list[int], object, int]] = {}
        self.max_pending = 0
        self.steps = 0
        self.fail_after_steps = fail_after_steps

    def add_request(self, request_id, prompt, sampling_params, prompt_token_ids=None):
        if prompt and "REFUSE" in prompt:
            raise ValueError("refused by the double")
        # later requests may finish first: 1 to 3 steps, by prompt length
        self.pending[request_id] = (prompt_token_ids, sampling_params, 1 + len(prompt_token_ids) % 3)
        self.max_pending = max(self.max_pending, len(self.pending))

    def abort_request(self, request_id):
        del self.pending[request_id]

    def has_unfinished_requests(self) -> bool:
        return bool(self.pending)

    def stats(self) -> EngineStats:
        return EngineStats(num_requests_running=len(self.pending), num_requests_waiting=0,
                           kv_blocks_used=len(self.pending), kv_blocks_total=64)

    def step(self) -> list[RequestOutput]:
        self.steps += 1
        if self.fail_after_steps is not None and self.steps > self.fail_after_steps:
            raise RuntimeError("engine double crashed")
        done = []
        for rid, (ids, sp, left) in list(self.pending.items()):
            if left > 1:
                self.pending[rid] = (ids, sp, left - 1)
                continue
            del self.pending[rid]
            out_ids = ids[::-1][: sp.max_tokens or len(ids)]
            outputs = [CompletionOutput(index=i, send_idx=0, token_ids=out_ids, text=bytes(out_ids).decode(),
                                        finish_reason="length" if len(out_ids) < len(ids) else "stop")
                       for i in range(sp.n)]
            failed = b"FAIL" in bytes(ids)
            done.append(RequestOutput(request_id=rid, prompt=None, prompt_token_ids=ids, outputs=outputs,
                                      finished=True, num_cached_tokens=len(ids) // 2,
                                      error_code=500 if failed else 200,
                                      error_msg="device fell over" if failed else None))
        return done
