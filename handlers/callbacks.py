"""Callback data of every inline button: short prefixes, ids only (≤ 64 bytes), never names."""

from __future__ import annotations

from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

# Ids and pages in callback data are checked like any input: a crafted huge number must not
# reach the database (SQLite integers end at 2**63).
Id = Annotated[int, Field(ge=0, lt=2**62)]
PageNumber = Annotated[int, Field(ge=0, le=100_000)]

# `by` on the browsing buttons: in a group, the user who opened the menu (0 in private chats),
# so one member's menu is not steered by another.


class CategoriesPage(CallbackData, prefix="cp"):
    page: PageNumber
    by: Id = 0


class ServicesPage(CallbackData, prefix="sp"):
    category: str  # the catalog's short stable key, derived from the category name
    page: PageNumber
    by: Id = 0


class SearchStart(CallbackData, prefix="sq"):
    by: Id = 0


class ServicePick(CallbackData, prefix="sv"):
    service: Id
    by: Id = 0


class FormAction(CallbackData, prefix="fa"):
    action: str  # back | skip | yes | cancel | delay
    value: Annotated[int, Field(ge=0, le=10_000)] = 0


class DraftAction(CallbackData, prefix="dr"):
    action: str  # confirm | drop
    order: Id  # local order id


class OrdersPage(CallbackData, prefix="op"):
    page: PageNumber


class OrderAction(CallbackData, prefix="oa"):
    action: str  # show | refresh | refill | cancel | cancel_yes
    order: Id  # local order id; ownership is checked on every press


class Approval(CallbackData, prefix="ap"):
    approve: bool
    order: Id
