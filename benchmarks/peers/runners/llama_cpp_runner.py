"""llama.cpp (through llama-cpp-python's C API bindings) on the bench model converted to GGUF
f32: all sequences of a workload decode together in one batch per step, the way
`llama-batched-bench` drives it, with greedy argmax over each step's logits in NumPy.

Settings: llama.cpp's defaults for the context (f16 KV cache, flash attention auto, n_batch
2048, n_ubatch 512) with n_threads = the cores and one unified KV cache (as llama-server's
default and batched-bench's -kvu: with a stream per sequence, a 64-sequence step ran ~40x
slower here), one context per workload sized to it (n_ctx = sequences x their longest prompt
+ output), created with the model: attention visits every cell of the cache each step, so an
oversized one would make llama.cpp look slower than it is. The shared-prefix workload computes
its prefix once and copies it to every sequence (llama_memory_seq_cp, batched-bench's
shared-prompt mode).
"""

import sys

import llama_cpp as ll
import numpy as np
from common import read_job, run_all


def load_model(path: str):
    ll.llama_backend_init()
    model = ll.llama_model_load_from_file(path.encode(), ll.llama_model_default_params())
    if not model:
        raise SystemExit(f"llama.cpp could not load {path}")
    return model


class BatchedContext:
    def __init__(self, model, num_seqs: int, seq_len: int, threads: int):
        self.vocab = ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(model))
        params = ll.llama_context_default_params()
        params.n_seq_max = num_seqs
        params.n_ctx = num_seqs * -(-seq_len // 256) * 256
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = True
        self.n_batch = params.n_batch
        self.ctx = ll.llama_init_from_model(model, params)
        if not self.ctx:
            raise SystemExit("llama.cpp could not create a context of this size")
        self.batch = ll.llama_batch_init(self.n_batch, 0, 1)
        self.settings = {"n_batch": params.n_batch, "n_ubatch": params.n_ubatch, "n_threads": params.n_threads,
                         "kv_unified": params.kv_unified, "type_k": params.type_k, "type_v": params.type_v,
                         "flash_attn_type": params.flash_attn_type, "gguf": "f32",
                         "system_info": ll.llama_print_system_info().decode().strip()}

    def decode(self, items: list[tuple[int, int, int, bool]]) -> dict[int, int]:
        """items: (token, position, sequence, wants logits), at most n_batch of them.
        Returns {sequence: argmax token} for the items that asked for logits."""
        b = self.batch
        for i, (token, pos, seq, wants) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, wants
            b.seq_id[i][0] = seq
        b.n_tokens = len(items)
        if ll.llama_decode(self.ctx, b) != 0:
            raise SystemExit("llama_decode failed (KV cache full?)")
        wanted = [(i, seq) for i, (_, _, seq, wants) in enumerate(items) if wants]
        if not wanted:
            return {}
        logits = np.ctypeslib.as_array(ll.llama_get_logits(self.ctx), shape=(len(wanted), self.vocab))
        best = logits.argmax(axis=1)  # outputs come in batch order
        return {seq: int(t) for (_, seq), t in zip(wanted, best)}

    def run(self, prompts: list[list[int]], output_len: int, shared_prefix_len: int) -> list[list[int]]:
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
        items, start = [], 0
        if shared_prefix_len:  # the prefix once in sequence 0, then copied to the others
            items += [(t, p, 0, False) for p, t in enumerate(prompts[0][:shared_prefix_len])]
            self._feed(items)
            items, start = [], shared_prefix_len
            memory = ll.llama_get_memory(self.ctx)
            for seq in range(1, len(prompts)):
                ll.llama_memory_seq_cp(memory, 0, seq, -1, -1)
        for seq, prompt in enumerate(prompts):
            items += [(t, p, seq, p == len(prompt) - 1) for p, t in enumerate(prompt) if p >= start]
        last = self._feed(items)
        out = [[last[seq]] for seq in range(len(prompts))]
        for step in range(1, output_len):
            items = [(out[s][-1], len(prompts[s]) + step - 1, s, True) for s in range(len(prompts))]
            for seq, token in self._feed(items).items():
                out[seq].append(token)
        return out

    def _feed(self, items: list) -> dict[int, int]:
        found = {}
        for i in range(0, len(items), self.n_batch):
            found.update(self.decode(items[i:i + self.n_batch]))
        return found


def main() -> None:
    job = read_job()
    settings = {}

    def load():
        """The model and a context per workload, sized to it (its warm-up runs in it too)."""
        model = load_model(job["gguf"])
        contexts = {}
        for w in job["workloads"]:
            contexts[w["name"]] = BatchedContext(model, len(w["prompts"]),
                                                 max(map(len, w["prompts"])) + w["output_len"], job["threads"])
        settings.update(next(iter(contexts.values())).settings)
        return contexts

    def generate(contexts, workload):
        return contexts[workload["name"]].run(workload["prompts"], workload["output_len"],
                                              workload["shared_prefix_len"])

    run_all(job, "llama.cpp", ll.__version__, settings, load, generate)


if __name__ == "__main__":
    main()
    sys.exit(0)
