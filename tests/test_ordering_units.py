"""`Ordering` owns its units of work: a state change and the messages announcing it commit
together or not at all (no Telegram here: the service alone, on the sandbox panel)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from bot import notices
from bot.notices import Translate
from bot.notify import Keyboard, Notifier
from bot.ordering import Ordering, Outcome, UserLocks, give_up_interrupted_submissions
from handlers.keyboards import NoticeKeyboards
from storage import orders, outbox
from storage.db import utcnow
from storage.models import Order, SubmissionState
from tests.rig import ADMIN, ALICE, MakeRig, Rig

FOLLOWERS = 1448
ANSWERS = {"link": "https://instagram.com/alice", "quantity": 1000}


class Injected(Exception):
    """The failure a test injects between a state change and its messages."""


class BrokenButtons:
    def approval(self, order_id: int, _: Translate) -> Keyboard:
        raise Injected


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    # Every order is over the limit: each confirmation waits for an admin.
    rig = await make_rig(max_order_price=Decimal("0.01"), admin_ids=[ADMIN, 1003])
    await rig.send(ALICE, "/start")  # the chat and the user the orders belong to
    return rig


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


async def awaiting_approval(ordering: Ordering, rig: Rig) -> Order:
    """Alice's order, confirmed and waiting for an admin; the admins' messages are cleared."""
    order = await draft(ordering, rig)
    await ordering.confirm(ALICE, ALICE, order.id, is_admin=False)
    await clear_outbox(rig)
    return order


async def state_and_queue(rig: Rig, order_id: int) -> tuple[str, list[Any]]:
    async with rig.services.sessions() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order.state, list(await outbox.pending(session))


async def clear_outbox(rig: Rig) -> None:
    """Drop every queued message, so a test sees only what comes after."""
    async with rig.services.sessions.begin() as session:
        for row in await outbox.pending(session):
            await outbox.drop(session, row.id)


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
    order = await awaiting_approval(ordering, rig)

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
    order = await awaiting_approval(ordering, rig)
    decided = await ordering.decide(order.id, ADMIN, approve=True)
    assert decided.outcome == Outcome.PLACED
    state, [told] = await state_and_queue(rig, order.id)
    assert state == SubmissionState.PLACED
    assert told.chat_id == ALICE and "Order placed" in told.text


async def test_an_approval_does_not_place_an_order_whose_service_changed(rig: Rig) -> None:
    ordering = rig.services.ordering
    order = await awaiting_approval(ordering, rig)
    sandbox = rig.services.sandbox
    assert sandbox is not None
    sandbox.set_rate(FOLLOWERS, "1.80")  # the panel doubled the price while it waited

    decided = await ordering.decide(order.id, ADMIN, approve=True)
    assert decided.outcome == Outcome.CHANGED
    assert "add" not in sandbox.actions()
    state, [told] = await state_and_queue(rig, order.id)
    assert state == SubmissionState.FAILED
    assert told.chat_id == ALICE and "nothing was ordered" in told.text
    again = await ordering.decide(order.id, ADMIN, approve=True)
    assert again.outcome == Outcome.TAKEN and "add" not in sandbox.actions()


async def test_a_late_panel_id_wins_over_an_order_given_up_on(rig: Rig) -> None:
    """The guard marked it unknown and an admin, finding nothing yet, marked it failed; then
    the slow `add` answers with an id: the order is placed and everyone is told."""
    ordering = rig.services.ordering
    order = await awaiting_approval(ordering, rig)
    sandbox = rig.services.sandbox
    assert sandbox is not None
    sandbox.delay_next("add", 1.0)
    approving = asyncio.create_task(ordering.decide(order.id, ADMIN, approve=True))
    await wait_for_state(rig, order.id, SubmissionState.SUBMITTING)
    async with rig.services.sessions.begin() as session:
        await orders.mark_interrupted_submissions_unknown(session, utcnow() + timedelta(1))
    await rig.services.reconciliation.mark_failed(order.id, admin_id=ADMIN)
    await clear_outbox(rig)

    placed = await approving
    assert placed.outcome == Outcome.PLACED
    state, queued = await state_and_queue(rig, order.id)
    assert state == SubmissionState.PLACED
    alerts = [row for row in queued if row.chat_id in (ADMIN, 1003)]
    assert len(alerts) == 2 and all("placed on the panel after all" in a.text for a in alerts)
    assert [row.chat_id for row in queued if "is confirmed" in row.text] == [ALICE]


async def test_an_interrupted_submission_tells_the_admins_and_the_customer(rig: Rig) -> None:
    ordering = rig.services.ordering
    order = await draft(ordering, rig)
    async with rig.services.sessions.begin() as session:
        await orders.move_state(
            session, order.id, expected=[SubmissionState.DRAFT], to=SubmissionState.SUBMITTING
        )
    notifier = Notifier(rig.services.settings, rig.services.i18n)
    given_up = await give_up_interrupted_submissions(
        rig.services.sessions, notifier, utcnow() + timedelta(seconds=1)
    )
    assert given_up == [order.id]
    state, queued = await state_and_queue(rig, order.id)
    assert state == SubmissionState.UNKNOWN
    assert sorted(row.chat_id for row in queued) == [ADMIN, ALICE, 1003]


async def test_confirmation_locks_are_freed(rig: Rig) -> None:
    locks = UserLocks()
    async with locks.hold(1), locks.hold(2):
        assert len(locks) == 2
    waiting = [asyncio.create_task(_hold_briefly(locks, 7)) for _ in range(5)]
    await asyncio.gather(*waiting)
    assert len(locks) == 0


async def _hold_briefly(locks: UserLocks, user_id: int) -> None:
    async with locks.hold(user_id):
        await asyncio.sleep(0)


async def wait_for_state(rig: Rig, order_id: int, state: str) -> None:
    for _ in range(200):
        if (await state_and_queue(rig, order_id))[0] == state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"order {order_id} never reached {state}")
