"""Why one input line cannot be served: becomes that line's error output, never stops the run."""

# error.code values written into output lines (a contract with users: keep them stable)
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
INVALID_REQUEST = "invalid_request"  # valid JSON, but not a request line object
MISSING_CUSTOM_ID = "missing_custom_id"
DUPLICATE_CUSTOM_ID = "duplicate_custom_id"
INVALID_METHOD = "invalid_method"
UNKNOWN_URL = "unknown_url"
INVALID_BODY = "invalid_body"
INVALID_SAMPLING_PARAMS = "invalid_sampling_params"
UNSUPPORTED_FIELD = "unsupported_field"  # a field whose effect we do not produce
MODEL_NOT_FOUND = "model_not_found"
PROMPT_TOO_LONG = "prompt_too_long"
ENGINE_ERROR = "engine_error"
# Requests the run stopped before serving (OpenAI's codes): the lines after a cancel or expiry.
BATCH_CANCELLED = "batch_cancelled"
BATCH_EXPIRED = "batch_expired"


class LineError(Exception):
    """A per-line problem. `field` is a dotted path into the line (e.g. body.temperature)."""

    def __init__(self, code: str, message: str, field: str | None = None, status: int = 400,
                 custom_id: str | None = None):
        self.code = code
        self.custom_id = custom_id  # when the line got far enough to name one
        self.field = field
        self.status = status
        self.detail = f"{field}: {message}" if field else message
        super().__init__(self.detail)


class BatchRunError(Exception):
    """The run itself cannot go on (input unreadable, output unwritable, model not loadable)."""
