"""Telegram routers; `get_routers` gives them in the order they must be included."""

from __future__ import annotations

from aiogram import Router

from handlers import access, admin, approvals, common, fallback, ordering, orders


def _detached(router: Router) -> Router:
    """The module's router, free to join a new dispatcher.

    Routers are module-level (one per module, as aiogram's examples do), but tests, benchmarks
    and a restart in the same process build a new dispatcher, and aiogram lets a router have
    only one parent.
    """
    parent = router.parent_router
    if parent is not None:
        parent.sub_routers.remove(router)
        router._parent_router = None
    return router


def get_routers() -> list[Router]:
    # Commands that work in every state come first; the catch-all is last.
    routers = [
        common.router,
        admin.router,
        access.router,
        approvals.router,
        ordering.router,
        orders.router,
        fallback.router,
    ]
    return [_detached(router) for router in routers]
