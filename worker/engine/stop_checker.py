"""Token-level stop rules, checked after each sampled token.

Stop STRINGS need the detokenized text, so the output processor checks them and reports back
through `Scheduler.finish(seq, "stop")`. The stopping token stays in `output_token_ids`
(it counts as a completion token, as in FastDeploy's usage); the detokenizer drops it from
the text when it is a special token.
"""

from worker.engine.sequence import Sequence


def check_stop(seq: Sequence, eos_token_ids: frozenset[int], max_model_len: int) -> str | None:
    """The finish reason ('stop' or 'length') if `seq` must stop after its last token, else None."""
    sp = seq.sampling_params
    num_output = seq.num_output_tokens
    if num_output >= sp.min_tokens and num_output > 0:
        token = seq.last_token
        if token in sp.stop_token_ids or (not sp.ignore_eos and token in eos_token_ids):
            return "stop"
    if sp.max_tokens is not None and num_output >= sp.max_tokens:
        return "length"
    if seq.num_tokens >= max_model_len:
        return "length"
    return None
