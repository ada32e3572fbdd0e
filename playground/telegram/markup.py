"""Reply markup validation: inline and reply keyboards, buttons, callback_data limits."""

from __future__ import annotations

import re
from typing import Any

from playground.telegram.errors import MARKUP_UNPARSABLE, JsonDict, bad_request
from playground.telegram.params import compact

MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100

_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_BUTTON_URL = re.compile(r"^(?:(?:https?|tg)://)?[^\s/$.?#][^\s]*$", re.IGNORECASE)


def check_reply_markup(value: Any, *, inline_only: bool = False) -> JsonDict | None:
    """The markup to store, or ApiError 400; an empty inline keyboard means no keyboard."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(MARKUP_UNPARSABLE)
    markup: JsonDict = compact(value)
    if "inline_keyboard" in markup:
        count = _check_inline_keyboard(markup["inline_keyboard"])
        return markup if count else None
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request(MARKUP_UNPARSABLE)
        return markup
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup
    raise bad_request(MARKUP_UNPARSABLE)


def _check_inline_keyboard(rows: Any) -> int:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request(MARKUP_UNPARSABLE)
    buttons = [button for row in rows for button in row]
    if len(buttons) > MAX_INLINE_BUTTONS:
        raise bad_request("reply markup is too long")
    for button in buttons:
        _check_inline_button(button)
    return len(buttons)


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if not any(action in button for action in _INLINE_ACTIONS):
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button and not _BUTTON_URL.match(str(button["url"])):
        raise bad_request(
            f"inline keyboard button URL {button['url']!r} is invalid: Wrong HTTP URL"
        )


def inline_part(markup: JsonDict | None) -> JsonDict | None:
    return markup if markup and "inline_keyboard" in markup else None
