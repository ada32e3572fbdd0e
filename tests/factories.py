"""Plain builders for test data: panel services, settings, order rows and their customers, and
a clock that moves only when a test moves it.

Each builder takes the fields it builds by their own names and fills the rest with sensible
defaults; a test passes every value it depends on, so a default never decides an outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.panel.models import Service
from storage import people
from storage.db import utcnow
from storage.models import Order, SubmissionState

# --- the panel's catalog ---------------------------------------------------------------------


def panel_service(**fields: Any) -> dict[str, Any]:
    """One entry of the panel's `services` answer, in the panel's own spelling (`service`,
    `type`, `min`, `max`…): what the sandbox or a parser is given."""
    defaults: dict[str, Any] = {
        "service": 1,
        "name": "Website Traffic",
        "type": "Default",
        "category": "Traffic",
        "rate": "0.90",
        "min": 10,
        "max": 5000,
    }
    return defaults | fields


def make_service(**fields: Any) -> Service:
    """A catalog `Service` as the client parses it from `panel_service(**fields)`."""
    return Service.model_validate(panel_service(**fields))


# --- settings ---------------------------------------------------------------------------------

# Outbox limits that never make a test wait for its messages.
FAST_OUTBOX: dict[str, Any] = {
    "outbox_global_per_second": 1000,
    "outbox_chat_interval": 0,
    "outbox_group_per_minute": 60000,
}


def make_settings(**overrides: Any) -> Settings:
    """Settings for a bot on the sandbox panel, with `overrides`; no .env file is read."""
    values: dict[str, Any] = {"bot_token": "123456:TEST-token", "panel_api_url": "sandbox"}
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


# --- orders -----------------------------------------------------------------------------------


async def remember_customer(
    session: AsyncSession, chat_id: int, user_id: int | None = None
) -> None:
    """The chat and the person an order belongs to (a negative `chat_id` is a group)."""
    await people.remember_chat(session, chat_id, "private" if chat_id > 0 else "group", None)
    await people.remember_user(
        session, chat_id if user_id is None else user_id, "customer", "Customer", "en"
    )


def placed_order(*, chat_id: int, **fields: Any) -> Order:
    """An `Order` row as the ordering code records it once the panel took it: 1000 followers
    for 0.90 USD, placed now, by the chat's own user unless `user_id` says otherwise."""
    values: dict[str, Any] = {
        "chat_id": chat_id,
        "user_id": chat_id,
        "service_id": 1448,
        "service_name": "Followers",
        "service_type": "Default",
        "service_rate": Decimal("0.90"),
        "link": "https://instagram.com/someone",
        "quantity": 1000,
        "price": Decimal("0.90"),
        "currency": "USD",
        "state": SubmissionState.PLACED,
        "placed_at": utcnow(),
    }
    return Order(**(values | fields))


async def add_orders(
    session: AsyncSession, panel_ids: Iterable[int | None], **fields: Any
) -> list[Order]:
    """One `placed_order(**fields)` a panel id, added and flushed so each row has its `id`.
    The chat and the user must exist already (`remember_customer`)."""
    rows = [placed_order(panel_order_id=panel_id, **fields) for panel_id in panel_ids]
    session.add_all(rows)
    await session.flush()
    return rows


# --- time -------------------------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when a test sets `now` (seconds, as `time.monotonic` gives)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
