"""Telegram routers; `get_routers` builds them fresh, in the order they must be included."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import CallableObject

from handlers import access, admin, approvals, common, fallback, ordering, orders, wallet


def get_routers() -> list[Router]:
    # Payments first (credited whatever the conversation's step), then the guards and the
    # commands that work in every state; the catch-all is last.
    factories = (common, admin, access, approvals, ordering, orders, wallet, fallback)
    routers = [wallet.create_payments_router(), *(module.create_router() for module in factories)]
    for router in routers:
        for check in _callables(router):
            _run_on_the_loop(check)
    return routers


def _callables(router: Router) -> Iterator[CallableObject]:
    """Every handler and filter of the router and of its sub-routers."""
    for observer in router.observers.values():
        for handler in observer.handlers:
            yield handler
            yield from handler.filters or ()
    for sub_router in router.sub_routers:
        yield from _callables(sub_router)


def _run_on_the_loop(check: CallableObject) -> None:
    """aiogram runs a plain function (a magic filter such as `F.text`, a state such as
    `OrderForm.answering`, a predicate) in a worker thread, in case it blocks: a thread hop for
    every filter checked on every update, a tenth of a millisecond each. Ours never block (they
    compare what the update carries), so they run on the loop."""
    if check.awaitable:
        return
    function: Callable[..., Any] = check.callback

    @functools.wraps(function)
    async def on_the_loop(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    check.callback = on_the_loop
    check.awaitable = True
