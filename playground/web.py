"""The playground's web chat: the page, the emulator's user API, and the sandbox controls.

One aiohttp application serves, on one port:

    GET  /                          the chat page (static/index.html, app.js, style.css)
    GET  /api/setup                 -> {"ok", "bot", "personas", "group", "sandbox", "settings"}
    GET  /api/sandbox               -> the sandbox state (balance, currency, orders, speed…)
    POST /api/sandbox/speed         {"factor"}   simulated time runs `factor` × as fast
    POST /api/sandbox/advance       {"seconds"}  move simulated time forward
    POST /api/sandbox/fail-next-add {"message"?} the next order is refused with that error
    POST /api/sandbox/partial-next  {}           the next order ends Partial (a refund to see)
    *    /user-api/...              the emulator's user API (see playground/telegram/users.py)

POST bodies must be JSON (`Content-Type: application/json`): a browser cannot send that
cross-origin without a preflight we never answer, so other web pages cannot drive the bot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aiohttp import web

from playground.sandbox import SandboxPanel
from playground.telegram import TelegramEmulator, UserApi

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = ("app.js", "style.css")
MAX_SPEED = Decimal(1000)
MAX_ADVANCE = Decimal(30 * 86400)
NOT_ENOUGH_FUNDS = "Not enough funds on balance"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Persona:
    """Someone the page can act as; their private chat with the bot has their id."""

    id: int
    name: str
    role: str
    may_order: bool


@dataclass(frozen=True)
class Group:
    """The group chat every persona is in (it receives the completion notices)."""

    id: int
    title: str


@web.middleware
async def _json_posts_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "POST" and request.content_type != "application/json":
        return web.json_response(
            {"ok": False, "error": "send a JSON body (Content-Type: application/json)"},
            status=415,
        )
    return await handler(request)


class SandboxControls:
    """The page's control strip: read the panel's state, change its clock, inject a refusal or
    a Partial ending."""

    def __init__(self, sandbox: SandboxPanel) -> None:
        self._sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/sandbox", self.get_state),
            web.post("/api/sandbox/speed", self.post_speed),
            web.post("/api/sandbox/advance", self.post_advance),
            web.post("/api/sandbox/fail-next-add", self.post_fail_next_add),
            web.post("/api/sandbox/partial-next", self.post_partial_next),
        ]

    def state(self) -> dict[str, Any]:
        return {"ok": True, **self._sandbox.state()}

    async def get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def post_speed(self, request: web.Request) -> web.Response:
        factor = await _number(request, "factor", MAX_SPEED)
        if isinstance(factor, web.Response):
            return factor
        self._sandbox.speed_up(float(factor))
        return web.json_response(self.state())

    async def post_advance(self, request: web.Request) -> web.Response:
        seconds = await _number(request, "seconds", MAX_ADVANCE)
        if isinstance(seconds, web.Response):
            return seconds
        self._sandbox.advance(float(seconds))
        return web.json_response(self.state())

    async def post_fail_next_add(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        message = body.get("message") if isinstance(body, dict) else None
        self._sandbox.fail_next_add(str(message or NOT_ENOUGH_FUNDS)[:200])
        return web.json_response(self.state())

    async def post_partial_next(self, request: web.Request) -> web.Response:
        self._sandbox.partial_next()
        return web.json_response(self.state())


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


async def _number(request: web.Request, name: str, maximum: Decimal) -> Decimal | web.Response:
    """The number in the body's `name` field, from 0 to `maximum`, or a 400 answer."""
    body = await _json_body(request)
    raw = body.get(name) if isinstance(body, dict) else None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        value = Decimal("NaN")
    if raw is None or isinstance(raw, bool) or not value.is_finite() or not 0 <= value <= maximum:
        error = f"{name} must be a number from 0 to {maximum}"
        return web.json_response({"ok": False, "error": error}, status=400)
    return value


def _static(name: str) -> Handler:
    path = STATIC_DIR / name

    async def serve(request: web.Request) -> web.StreamResponse:
        # no-cache: after an upgrade the browser must not keep an old app.js.
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return serve


def create_app(
    emulator: TelegramEmulator,
    sandbox: SandboxPanel,
    *,
    personas: Sequence[Persona],
    group: Group,
    settings: Sequence[str] = (),
) -> web.Application:
    """The web chat for `emulator`'s first bot, with controls for `sandbox`; `settings` are
    the user's settings that change what the bot does (`NAME=value`), shown on the page."""
    controls = SandboxControls(sandbox)

    async def setup(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "ok": True,
                "bot": emulator.bot_user(),
                "personas": [asdict(persona) for persona in personas],
                "group": asdict(group),
                "sandbox": controls.state(),
                "settings": list(settings),
            }
        )

    app = web.Application(middlewares=[_json_posts_only])
    app.router.add_get("/", _static("index.html"))
    for name in STATIC_FILES:
        app.router.add_get(f"/static/{name}", _static(name))
    app.router.add_get("/api/setup", setup)
    app.add_routes(controls.routes())
    app.add_routes(UserApi(emulator).routes())
    return app
