"""Why the engine refuses a request; no paddle here, so run-batch's pipeline can tell them apart."""


class InvalidRequestError(ValueError):
    """A request the engine cannot serve (empty prompt, unknown token ids, ...)."""


class PromptTooLongError(InvalidRequestError):
    """The prompt leaves no room for one output token in max_model_len. The one place the
    prompt's length is checked: LLM and run-batch both add requests through the engine."""
