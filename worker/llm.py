"""The offline API, as FastDeploy's: `LLM(model=...).generate(...)` and `.chat(...)`."""

import itertools
from collections.abc import Sequence as SequenceABC
from typing import Any

from tqdm import tqdm

from worker.engine.engine_args import EngineArgs
from worker.engine.llm_engine import LLMEngine
from worker.outputs import RequestOutput
from worker.sampling_params import SamplingParams

Prompt = str | list[int]
Messages = list[dict[str, Any]]


class LLM:
    """Offline batch inference: requests are queued and continuously batched by the engine."""

    def __init__(self, model: str, **engine_kwargs: Any) -> None:
        self.engine = LLMEngine(EngineArgs(model=model, **engine_kwargs))
        self._request_counter = itertools.count()

    def get_tokenizer(self):
        return self.engine.tokenizer

    def generate(
        self,
        prompts: Prompt | SequenceABC[Prompt],
        sampling_params: SamplingParams | SequenceABC[SamplingParams] | None = None,
        use_tqdm: bool = True,
    ) -> list[RequestOutput]:
        """Complete text prompts or token-id prompts; results come back in input order."""
        prompt_list = _as_prompt_list(prompts)
        params = _per_prompt(sampling_params, len(prompt_list))
        request_ids = []
        for prompt, sp in zip(prompt_list, params):
            request_id = str(next(self._request_counter))
            if isinstance(prompt, str):
                self.engine.add_request(request_id, prompt, sp)
            else:
                self.engine.add_request(request_id, None, sp, prompt_token_ids=list(prompt))
            request_ids.append(request_id)
        return self._run(request_ids, use_tqdm)

    def chat(
        self,
        messages: Messages | SequenceABC[Messages],
        sampling_params: SamplingParams | SequenceABC[SamplingParams] | None = None,
        use_tqdm: bool = True,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> list[RequestOutput]:
        """Render each conversation with the model's chat template, then generate."""
        conversations = [messages] if messages and isinstance(messages[0], dict) else list(messages)
        prompts = [
            self.engine.tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, **(chat_template_kwargs or {})
            )
            for conversation in conversations
        ]
        return self.generate(prompts, sampling_params, use_tqdm)

    def _run(self, request_ids: list[str], use_tqdm: bool) -> list[RequestOutput]:
        finished: dict[str, RequestOutput] = {}
        with tqdm(total=len(request_ids), desc="Processed prompts", disable=not use_tqdm) as bar:
            while self.engine.has_unfinished_requests():
                for output in self.engine.step():
                    finished[output.request_id] = output
                    bar.update(1)
        return [finished[request_id] for request_id in request_ids]


def _as_prompt_list(prompts: Prompt | SequenceABC[Prompt]) -> list[Prompt]:
    if isinstance(prompts, str):
        return [prompts]
    prompts = list(prompts)
    if prompts and all(isinstance(token, int) for token in prompts):
        return [prompts]  # a single prompt given as token ids
    return prompts


def _per_prompt(
    sampling_params: SamplingParams | SequenceABC[SamplingParams] | None, count: int
) -> list[SamplingParams]:
    if sampling_params is None:
        return [SamplingParams() for _ in range(count)]
    if isinstance(sampling_params, SamplingParams):
        return [sampling_params] * count
    params = list(sampling_params)
    if len(params) != count:
        raise ValueError(f"sampling_params has {len(params)} entries for {count} prompts")
    return params
