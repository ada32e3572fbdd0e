"""Every message the bot builds from panel data fits Telegram's limits (4096 characters a
message, 64 bytes of callback data), however long the panel's names are."""

from __future__ import annotations

import pytest
from aiogram.methods import SendMessage

from tests.factories import add_orders
from tests.rig import ALICE, MakeRig, Rig, buttons, last_menu, sent_messages

TELEGRAM_MAX = 4096


@pytest.fixture
async def rig(make_rig: MakeRig) -> Rig:
    rig = await make_rig(page_size=20)
    await rig.send(ALICE, "/start")  # Alice's chat, which the orders below belong to
    return rig


async def add_alices_orders(rig: Rig, count: int, name: str) -> None:
    """`count` orders of Alice's, in progress on the panel, of a service called `name`."""
    async with rig.services.sessions.begin() as session:
        await add_orders(
            session,
            range(50_000, 50_000 + count),
            chat_id=ALICE,
            service_name=name,
            link="https://instagram.com/alice",
            status="In progress",
        )


@pytest.mark.parametrize(("count", "length"), [(8, 500), (20, 200), (20, 512)])
async def test_the_order_list_fits_one_message(rig: Rig, count: int, length: int) -> None:
    await add_alices_orders(rig, count, "Followers " + "x" * (length - 10))
    sent = await rig.send(ALICE, "/orders")
    [listing] = [request for request in sent if isinstance(request, SendMessage)]
    assert len(listing.text) <= TELEGRAM_MAX
    menu = last_menu(sent)
    for button in buttons(menu):
        assert len((button.callback_data or "").encode()) <= 64
        assert "In progress" in button.text or "›" in button.text  # the state is never cut
    card = sent_messages(await rig.press(ALICE, menu, "#50000"))[-1]
    assert len(card.text or "") <= TELEGRAM_MAX
