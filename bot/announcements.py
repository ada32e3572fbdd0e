"""The outbox rows that announce stored status changes, each in its recipient's language."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from bot import notices
from bot.billing import Refund
from bot.config import Settings
from bot.notices import Translations
from bot.notify import NoticeButtons
from bot.panel.models import parse_order_status
from storage import outbox, polling
from storage.polling import DueOrder, DueRefill

# Outbox message kinds.
ORDER_UPDATE = "order_status"
GROUP_NOTICE = "order_notice"
REFILL_UPDATE = "refill_status"


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A status change that was stored, waiting to be announced."""

    order: DueOrder
    status: str
    remains: int | None
    charge: Decimal | None
    currency: str
    refund: Refund | None = None  # reseller mode: what this final status gave back


class StatusAnnouncer:
    """Writes the outbox rows for stored changes, each in its recipient's language."""

    def __init__(
        self, settings: Settings, i18n: Translations, buttons: NoticeButtons | None = None
    ) -> None:
        self._settings = settings
        self._i18n = i18n
        self._buttons = buttons  # the order's own buttons on its owner's pushes
        self._notify_on = {str(parse_order_status(word)) for word in settings.notify_on}

    async def orders(
        self, session: AsyncSession, changes: Sequence[OrderChange], *, include_owner: bool = True
    ) -> int:
        """One row for the ordering chat, plus one per subscribed chat for a NOTIFY_ON status.

        Subscribed chats are NOTIFY_CHAT_IDS and the /notify_here groups, each once, never the
        ordering chat a second time. Returns how many rows were written.
        """
        if not changes:
            return 0
        subscribers: list[int] = []
        if any(change.status in self._notify_on for change in changes):
            subscribers = await outbox.subscribed_chats(session, self._settings.notify_chat_ids)
        owners = [change.order.chat_id for change in changes]
        facts = await outbox.recipients(session, owners + subscribers)
        told_groups = [c.order.id for c in changes if subscribers and c.status in self._notify_on]
        about = await polling.notice_facts(session, told_groups)
        written = 0
        for change in changes:
            owner = change.order.chat_id
            targets = [(owner, ORDER_UPDATE)] if include_owner and not facts[owner].blocked else []
            if change.status in self._notify_on:
                targets += [(chat, GROUP_NOTICE) for chat in subscribers if chat != owner]
            for chat_id, kind in targets:
                _ = self._translate(facts[chat_id])
                # In reseller mode nobody reads the panel's charge; the customer reads the refund.
                wallet = change.order.customer_currency is not None
                text = notices.order_update_text(
                    _,
                    panel_order_id=change.order.panel_order_id,
                    service_name=change.order.service_name,
                    status=change.status,
                    remains=change.remains,
                    charge=None if wallet or self._settings.wallet_mode else change.charge,
                    currency=change.currency,
                    refund=change.refund if kind == ORDER_UPDATE else None,
                )
                markup = None
                if kind == GROUP_NOTICE and change.order.id in about:
                    text += "\n" + notices.who_ordered(about[change.order.id], _)
                elif kind == ORDER_UPDATE and self._buttons is not None:
                    markup = self._buttons.order_update(change.order, change.status, _)
                await outbox.enqueue(session, chat_id, text, markup, kind=kind)
                written += 1
        return written

    async def refills(
        self, session: AsyncSession, changed: Sequence[tuple[DueRefill, str]]
    ) -> int:
        """One row per refill status change, for the chat that ordered the refilled order."""
        facts = await outbox.recipients(session, [refill.chat_id for refill, _ in changed])
        written = 0
        for refill, status in changed:
            if facts[refill.chat_id].blocked:
                continue
            text = notices.refill_update_text(
                self._translate(facts[refill.chat_id]),
                panel_refill_id=refill.panel_refill_id,
                panel_order_id=refill.panel_order_id,
                service_name=refill.service_name,
                status=status,
            )
            await outbox.enqueue(session, refill.chat_id, text, kind=REFILL_UPDATE)
            written += 1
        return written

    def _translate(self, recipient: outbox.Recipient) -> notices.Translate:
        language = notices.recipient_language(recipient, self._settings.default_language)
        return notices.translator(self._i18n, language)
