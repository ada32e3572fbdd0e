"""Callback data of every inline button: short prefixes, ids only (≤ 64 bytes), never names."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

# `by` on the browsing buttons: in a group, the user who opened the menu (0 in private chats),
# so one member's menu is not steered by another.


class CategoriesPage(CallbackData, prefix="cp"):
    page: int
    by: int = 0


class ServicesPage(CallbackData, prefix="sp"):
    category: str  # the catalog's short stable key, derived from the category name
    page: int
    by: int = 0


class SearchStart(CallbackData, prefix="sq"):
    by: int = 0


class ServicePick(CallbackData, prefix="sv"):
    service: int
    by: int = 0


class FormStart(CallbackData, prefix="fs"):
    service: int


class FormAction(CallbackData, prefix="fa"):
    action: str  # back | skip | yes | cancel | delay
    value: int = 0


class DraftAction(CallbackData, prefix="dr"):
    action: str  # confirm | drop
    order: int  # local order id


class OrdersPage(CallbackData, prefix="op"):
    page: int


class OrderAction(CallbackData, prefix="oa"):
    action: str  # show | refresh | refill | cancel | cancel_yes
    order: int  # local order id; ownership is checked on every press


class Approval(CallbackData, prefix="ap"):
    approve: bool
    order: int
