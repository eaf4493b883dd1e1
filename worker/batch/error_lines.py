"""Rejected lines as OpenAI's batch error file writes them (--error-file): a request the
server answered has `response.status_code` 4xx/5xx and `response.body.error {message, type,
param, code}`; a line that is no request at all (not UTF-8, not JSON, no custom_id) has no
HTTP response, so only the top-level `error`."""

from pydantic import BaseModel

from worker.batch import errors as E
from worker.batch.responses import JsonLine, LineErrorBody, OutputLine

# Not a request, or one never sent: nothing an HTTP endpoint answered.
_NO_RESPONSE = {E.INVALID_UTF8, E.INVALID_JSON, E.INVALID_REQUEST, E.MISSING_CUSTOM_ID, E.BATCH_CANCELLED,
                E.BATCH_EXPIRED}


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorBody(BaseModel):
    error: ErrorObject


class ErrorResponse(BaseModel):
    status_code: int
    request_id: str
    body: ErrorBody


class ErrorFileLine(JsonLine):
    id: str
    custom_id: str
    response: ErrorResponse | None
    error: LineErrorBody | None


def error_file_line(line: OutputLine, param: str | None) -> ErrorFileLine:
    """The inline error line (message already numbered) in the error file's shape."""
    err = line.error
    if err.code in _NO_RESPONSE:
        return ErrorFileLine(id=line.id, custom_id=line.custom_id, response=None, error=err)
    status = line.response.status_code
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = ErrorBody(error=ErrorObject(message=err.message, type=kind, param=param, code=err.code))
    return ErrorFileLine(id=line.id, custom_id=line.custom_id, error=None,
                         response=ErrorResponse(status_code=status, request_id=line.response.request_id, body=body))
