"""Typed failures of the panel API: the panel said no, or it could not be reached.

Messages name the action and the kind of failure only, never the key or a request body.
"""

from __future__ import annotations


class PanelError(Exception):
    """The panel answered ``{"error": ...}``: a definite refusal, kept verbatim in ``message``."""

    def __init__(self, message: str, *, action: str | None = None) -> None:
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
