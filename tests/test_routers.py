"""The routers as the dispatcher gets them: every check runs on the event loop."""

from __future__ import annotations

from handlers import _callables, _run_on_the_loop, get_routers


def test_no_handler_or_filter_runs_in_a_worker_thread() -> None:
    """aiogram hands a plain function to a thread per call; get_routers makes each async."""
    checks = [check for router in get_routers() for check in _callables(router)]
    assert len(checks) > 100
    assert all(check.awaitable for check in checks)


async def test_a_plain_filter_still_decides_the_same() -> None:
    [router] = [r for r in get_routers() if r.name == "handlers.fallback"]
    [handler] = [h for h in router.message.handlers if h.callback.__name__ == "unknown_message"]
    private = (handler.filters or [])[0]

    class Chat:
        type = "private"

    class Message:
        chat = Chat()

    assert await private.call(Message()) is True
    Chat.type = "group"
    assert await private.call(Message()) is False
    _run_on_the_loop(private)  # a second pass leaves an async check as it is
    assert await private.call(Message()) is False
