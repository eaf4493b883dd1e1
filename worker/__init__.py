"""batchinfer worker: the paged-attention engine, the offline `LLM` API and the batch CLI.

`LLM` and `SamplingParams` are imported lazily so that the light modules shared with the
operator image (storage I/O, the batch line format, logging) never pull in paddle.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["LLM", "SamplingParams", "GuidedDecodingParams", "RequestOutput", "CompletionOutput", "RequestMetrics"]

if TYPE_CHECKING:
    from worker.guided_decoding import GuidedDecodingParams
    from worker.llm import LLM
    from worker.outputs import CompletionOutput, RequestMetrics, RequestOutput
    from worker.sampling_params import SamplingParams

_LAZY = {
    "LLM": "worker.llm",
    "SamplingParams": "worker.sampling_params",
    "GuidedDecodingParams": "worker.guided_decoding",
    "RequestOutput": "worker.outputs",
    "CompletionOutput": "worker.outputs",
    "RequestMetrics": "worker.outputs",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
