"""The Bot API's error answers: `ApiError` and the descriptions Telegram gives."""

from __future__ import annotations

from typing import Any

from aiohttp import web

JsonDict = dict[str, Any]

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
GETUPDATES_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: injected fault",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: GETUPDATES_CONFLICT,
    500: "Internal Server Error",
    502: "Bad Gateway",
}
MARKUP_UNPARSABLE = "can't parse reply keyboard markup JSON object"


class ApiError(Exception):
    """A Bot API error answer: becomes `{"ok": false, "error_code", "description", ...}`."""

    def __init__(self, code: int, description: str, parameters: JsonDict | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def response(self) -> web.Response:
        payload: JsonDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            payload["parameters"] = self.parameters
        return web.json_response(payload, status=self.code)


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )
