"""Callback data of every inline button: short prefixes, ids only (≤ 64 bytes), never names.

Every button of a menu, a form, a summary or an order card carries `by`, the member it was shown
to (`MEMBER_BUTTONS`): in a group, anyone else's press changes nothing (`handlers.filters`).
Buttons packed before `by` existed do not unpack, and reach the one stale-button handler.
"""

from __future__ import annotations

import enum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from bot.ids import MAX_ID

# Ids and pages in callback data are checked like any input: a crafted huge number must not
# reach the database.
Id = Annotated[int, Field(ge=0, lt=MAX_ID)]
PageNumber = Annotated[int, Field(ge=0, le=100_000)]
Member = Annotated[int, Field(gt=0, lt=MAX_ID)]
# The ordering conversation a menu belongs to (see `handlers.flows`).
FlowNumber = Annotated[int, Field(ge=0, lt=1_000_000)]


class FormStep(enum.StrEnum):
    BACK = "back"
    SKIP = "skip"
    YES = "yes"
    CANCEL = "cancel"
    DELAY = "delay"
    CHANGE = "change"  # on a summary: answer one step again (value: CHANGEABLE's index)


class DraftStep(enum.StrEnum):
    CONFIRM = "confirm"
    DROP = "drop"


class OrderStep(enum.StrEnum):
    SHOW = "show"
    REFRESH = "refresh"
    REFILL = "refill"
    CANCEL = "cancel"
    CANCEL_YES = "cancel_yes"  # the answer to "Cancel order #N?"
    AGAIN = "again"  # the same service and answers, to a fresh summary


# The buttons of an ordering conversation carry its `flow`; `by` comes last everywhere.


class NewOrder(CallbackData, prefix="no"):
    """Start a new ordering conversation (offered where an old menu was pressed)."""

    by: Member


class CategoriesPage(CallbackData, prefix="cp"):
    page: PageNumber
    flow: FlowNumber
    by: Member


class ServicesPage(CallbackData, prefix="sp"):
    category: str  # the catalog's short stable key, derived from the category name
    page: PageNumber
    flow: FlowNumber
    by: Member


class SearchStart(CallbackData, prefix="sq"):
    flow: FlowNumber
    by: Member


class ServicePick(CallbackData, prefix="sv"):
    service: Id
    flow: FlowNumber
    by: Member


class FormAction(CallbackData, prefix="fa"):
    action: FormStep
    value: Annotated[int, Field(ge=0, le=10_000)]
    flow: FlowNumber
    by: Member


class DraftAction(CallbackData, prefix="dr"):
    """Confirm or drop a summary's draft: the draft's own compare-and-set guards it, so it
    carries no flow (a second Confirm, even from an old summary, places nothing more)."""

    action: DraftStep
    order: Id  # local order id
    by: Member


class OrdersPage(CallbackData, prefix="op"):
    page: PageNumber
    by: Member


class OrderAction(CallbackData, prefix="oa"):
    action: OrderStep
    order: Id  # local order id; ownership is checked on every press
    by: Member


class FavouriteToggle(CallbackData, prefix="fv"):
    """☆ / ★ on a service card (not part of a flow: starring is never stale)."""

    service: Id
    by: Member


class FavouritesPage(CallbackData, prefix="fp"):
    """★ Favourites on the first category screen."""

    flow: FlowNumber
    by: Member


class LanguageChoice(CallbackData, prefix="lang"):
    code: str
    by: Member


# Admin buttons are sent to admins' private chats and checked by the admin filter.


class Approval(CallbackData, prefix="ap"):
    approve: bool
    order: Id


class MarkPlaced(CallbackData, prefix="ukp"):
    order: Id  # local order id


class MarkFailed(CallbackData, prefix="ukf"):
    order: Id


class AccessDecision(CallbackData, prefix="ad"):
    """An admin's answer to someone's "Ask for access"."""

    allow: bool
    user: Member


class AccessRequest(CallbackData, prefix="ar"):
    """A stranger's "🙋 Ask for access"."""

    by: Member


class WalletOpen(CallbackData, prefix="wo"):
    """Reseller mode: show the member's wallet and its top-up buttons. `order` is the summary
    (a draft) to come back to after paying, 0 for none."""

    order: Id = 0
    by: Member


Cents = Annotated[int, Field(gt=0, lt=10**15)]


class TopupPick(CallbackData, prefix="tp"):
    """A top-up amount pressed on the wallet (in cents: what the button showed is what is
    invoiced); `order` is the summary to come back to, 0 for none."""

    cents: Cents
    order: Id = 0
    by: Member


class TopupOther(CallbackData, prefix="tx"):
    """ "Other amount" on the wallet: the member types it."""

    order: Id = 0
    by: Member


class SummaryReturn(CallbackData, prefix="sr"):
    """After a top-up: show the summary (a draft) the member left for the wallet again."""

    order: Id
    by: Member


FLOW_BUTTONS: dict[str, type[CallbackData]] = {
    kind.__prefix__: kind
    for kind in (
        CategoriesPage,
        ServicesPage,
        SearchStart,
        ServicePick,
        FormAction,
        FavouritesPage,
    )
}
MEMBER_BUTTONS: dict[str, type[CallbackData]] = {
    kind.__prefix__: kind
    for kind in (
        NewOrder,
        CategoriesPage,
        ServicesPage,
        SearchStart,
        ServicePick,
        FormAction,
        DraftAction,
        OrdersPage,
        OrderAction,
        LanguageChoice,
        AccessRequest,
        FavouriteToggle,
        FavouritesPage,
        WalletOpen,
        TopupPick,
        TopupOther,
        SummaryReturn,
    )
}
# Wallet buttons are not ordering ones: in reseller mode anyone not denied may top up.
WALLET_BUTTONS = frozenset(
    kind.__prefix__ for kind in (WalletOpen, TopupPick, TopupOther, SummaryReturn)
)
ORDERING_BUTTONS = (
    frozenset(MEMBER_BUTTONS)
    - {
        LanguageChoice.__prefix__,
        AccessRequest.__prefix__,
    }
    - WALLET_BUTTONS
)


def flow_of(data: str | None) -> int | None:
    """The flow an ordering button belongs to; None for other buttons."""
    return _number_in(data, FLOW_BUTTONS, "flow")


def member_of(data: str | None) -> int | None:
    """Who a member button was shown to; None for other buttons (or ones that do not unpack)."""
    return _number_in(data, MEMBER_BUTTONS, "by")


def _number_in(data: str | None, kinds: dict[str, type[CallbackData]], name: str) -> int | None:
    kind = kinds.get((data or "").split(":", 1)[0])
    if kind is None:
        return None
    try:
        number: int = getattr(kind.unpack(data or ""), name)  # every kind of `kinds` has it
    except (TypeError, ValueError):
        return None
    return number
