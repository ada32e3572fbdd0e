"""`Ordering` owns its units of work: a state change and the messages announcing it commit
together or not at all (no Telegram here: the service alone, on the sandbox panel)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot import notices
from bot.notices import Translate
from bot.notify import Keyboard
from bot.ordering import Ordering, Outcome
from handlers.keyboards import NoticeKeyboards
from storage import outbox
from storage.models import Order, SubmissionState
from tests.rig import ADMIN, ALICE, Rig

FOLLOWERS = 1448
ANSWERS = {"link": "https://instagram.com/alice", "quantity": 1000}


class Injected(Exception):
    """The failure a test injects between a state change and its messages."""


class BrokenButtons:
    def approval(self, order_id: int, _: Translate) -> Keyboard:
        raise Injected


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    # Every order is over the limit: each confirmation waits for an admin.
    rig = await Rig.start(tmp_path, max_order_price=Decimal("0.01"), admin_ids=[ADMIN, 1003])
    await rig.send(ALICE, "/start")  # the chat and the user the orders belong to
    yield rig
    await rig.stop()


def ordering_with(rig: Rig, buttons: Any) -> Ordering:
    services = rig.services
    return Ordering(
        services.sessions, services.panel, services.settings, services.i18n, buttons,
        services.catalog,
    )  # fmt: skip


async def draft(ordering: Ordering, rig: Rig) -> Order:
    service = (await rig.services.catalog.get()).service(FOLLOWERS)
    assert service is not None
    return await ordering.create_draft(ALICE, ALICE, service, dict(ANSWERS))


async def state_and_queue(rig: Rig, order_id: int) -> tuple[str, list[Any]]:
    async with rig.services.sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order.state, list(await outbox.pending(session))


async def test_an_approval_request_and_its_admin_messages_commit_together(rig: Rig) -> None:
    ordering = ordering_with(rig, NoticeKeyboards())
    order = await draft(ordering, rig)
    placement = await ordering.confirm(ALICE, ALICE, order.id, is_admin=False)
    assert placement.outcome == Outcome.AWAITING_APPROVAL
    state, queued = await state_and_queue(rig, order.id)
    assert state == SubmissionState.AWAITING_APPROVAL
    assert sorted(row.chat_id for row in queued) == [ADMIN, 1003]
    assert all("waits for your approval" in row.text for row in queued)
    assert all("Approve" in str(row.reply_markup) for row in queued)


async def test_a_failure_between_the_change_and_its_messages_leaves_neither(rig: Rig) -> None:
    ordering = ordering_with(rig, BrokenButtons())
    order = await draft(ordering, rig)
    with pytest.raises(Injected):
        await ordering.confirm(ALICE, ALICE, order.id, is_admin=False)
    state, queued = await state_and_queue(rig, order.id)
    assert state == SubmissionState.DRAFT and queued == []
    # Nothing is half done: the same draft can be confirmed again once messages can be written.
    retried = await ordering_with(rig, NoticeKeyboards()).confirm(
        ALICE, ALICE, order.id, is_admin=False
    )
    assert retried.outcome == Outcome.AWAITING_APPROVAL


async def test_a_rejection_and_the_customers_message_commit_together(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    ordering = ordering_with(rig, NoticeKeyboards())
    order = await draft(ordering, rig)
    await ordering.confirm(ALICE, ALICE, order.id, is_admin=False)
    async with rig.services.sessions.begin() as session:
        for row in await outbox.pending(session):
            await outbox.drop(session, row.id)

    def broken(order: Order, _: Translate) -> str:
        raise Injected

    monkeypatch.setattr(notices, "rejected_text", broken)
    with pytest.raises(Injected):
        await ordering.decide(order.id, ADMIN, approve=False)
    assert await state_and_queue(rig, order.id) == (SubmissionState.AWAITING_APPROVAL, [])

    monkeypatch.undo()
    decided = await ordering.decide(order.id, ADMIN, approve=False)
    assert decided.outcome == Outcome.REJECTED
    state, [told] = await state_and_queue(rig, order.id)
    assert state == SubmissionState.REJECTED
    assert told.chat_id == ALICE and "did not approve" in told.text


async def test_an_approved_order_tells_its_customer_with_the_placement(rig: Rig) -> None:
    ordering = ordering_with(rig, NoticeKeyboards())
    order = await draft(ordering, rig)
    await ordering.confirm(ALICE, ALICE, order.id, is_admin=False)
    async with rig.services.sessions.begin() as session:
        for row in await outbox.pending(session):
            await outbox.drop(session, row.id)
    decided = await ordering.decide(order.id, ADMIN, approve=True)
    assert decided.outcome == Outcome.PLACED
    state, [told] = await state_and_queue(rig, order.id)
    assert state == SubmissionState.PLACED
    assert told.chat_id == ALICE and "Order placed" in told.text
