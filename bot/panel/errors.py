"""Typed failures of the panel API: the panel said no, or it could not be reached.

Messages name the action and the kind of failure only, never the key or a request body.
"""

from __future__ import annotations

MAX_ERROR_LENGTH = 300  # characters of a panel's error text that are kept


def clip(text: str, limit: int) -> str:
    """``text`` if it fits ``limit`` characters, else its start and a trailing "…" (``limit``
    characters in all)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PanelError(Exception):
    """The panel answered ``{"error": ...}``: a definite refusal, kept in ``message`` as the panel
    wrote it, except that the client's key is replaced by ``***`` and the text is clipped to
    ``MAX_ERROR_LENGTH`` characters."""

    def __init__(self, message: str, *, action: str | None = None) -> None:
        message = clip(message, MAX_ERROR_LENGTH)
        super().__init__(message)
        self.message = message
        self.action = action


def is_out_of_funds(message: str | None) -> bool:
    """The panel refused an order because the account's balance does not cover it."""
    return message is not None and "not enough funds" in message.casefold()


class PanelUnavailable(Exception):
    """No usable answer: network error, timeout, 5xx, an HTML page, invalid or unexpected JSON."""

    prefix = "panel unavailable"

    def __init__(self, reason: str, *, action: str) -> None:
        super().__init__(f"{self.prefix}: {reason} on action={action}")
        self.reason = reason
        self.action = action


class OrderOutcomeUnknown(PanelUnavailable):
    """An ``add`` was sent but no answer was parsed: the order may or may not exist.

    Never retry blindly: reconcile with the panel (order list, balance) instead.
    """

    prefix = "order outcome unknown"
