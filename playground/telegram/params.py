"""Request parameters: query string, form, multipart or JSON, decoded to Python values."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from playground.telegram.errors import MARKUP_UNPARSABLE, JsonDict, bad_request

_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "reply_parameters",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "caption_entities",
        "prices",
        "suggested_tip_amounts",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "timeout",
        "cache_time",
        "message_thread_id",
        "user_id",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "disable_notification",
        "protect_content",
        "allow_sending_without_reply",
        "drop_pending_updates",
        "disable_web_page_preview",
        "ok",
        "need_name",
        "is_flexible",
    }
)
_INT_TEXT = re.compile(r"^-?\d+$")


def compact(value: Any) -> Any:
    """Drop null fields, as aiogram does, so markups from any client compare equal."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


async def read_params(request: web.Request) -> JsonDict:
    """Parameters from the query string plus a form, multipart or JSON body, decoded."""
    params: JsonDict = dict(request.query)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as error:
            raise bad_request("can't parse JSON object") from error
        if not isinstance(body, dict):
            raise bad_request("can't parse JSON object")
        params.update(body)
    elif request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return decode_params(params)


def decode_params(params: JsonDict) -> JsonDict:
    """Form values (all text) as the methods read them: JSON fields, numbers, booleans."""
    return {name: _decode_param(name, value) for name, value in params.items()}


def _decode_param(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError as error:
            detail = MARKUP_UNPARSABLE if name == "reply_markup" else f"can't parse {name} JSON"
            raise bad_request(detail) from error
    if name in _INT_FIELDS and _INT_TEXT.match(value):
        return int(value)
    if name in _BOOL_FIELDS and value in ("true", "false"):
        return value == "true"
    return value


def int_param(params: JsonDict, name: str, missing: str) -> int:
    value = params.get(name)
    if value is None or value == "":
        raise bad_request(missing)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"invalid {name} specified")
    return value


def optional_int(params: JsonDict, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return int_param(params, name, "")
