"""One rule per service type: the button, the card, the form, the price and the sandbox's
charge agree, whatever the spelling of the type, and an unknown type is Default everywhere."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from bot import services
from bot.billing import Markups
from bot.forms import (
    add_arguments,
    next_field,
    order_price,
    price_basis,
    steps_for,
    validate_field,
)
from bot.i18n import create_i18n
from bot.money import format_money
from bot.ordering import PriceList
from bot.panel.client import PanelClient
from bot.panel.models import Service
from bot.services import (
    LIST_FIELDS,
    OrderFigures,
    QuantitySource,
    ServiceType,
    counted_field,
    is_known_type,
    is_open_ended,
    is_package,
    is_subscription,
    list_fields,
    quantity_source,
    service_type,
)
from handlers.texts import service_card, service_line
from playground.sandbox import TYPE_RULES, SandboxPanel
from tests.factories import make_service, panel_service

LINK = "https://instagram.com/someone"
CURRENCY = "USD"
TEAM_PRICES = PriceList(CURRENCY, None, Markups())  # the panel's rates, as in team mode
# What a customer types at each step.
TYPED = {
    "link": LINK, "quantity": "2500", "comments": "one\ntwo\nthree", "dripfeed": "yes",
    "runs": "3", "interval": "10", "username": "someone", "min": "100", "max": "200",
    "delay": "0",
}  # fmt: skip


# The one service these tests offer under every spelling of every type: what names it in the
# panel's list, and `bundle(**fields)` parsed, at 1.20 a thousand for 100 to 10000 by default.
BUNDLE: dict[str, Any] = {
    "service": 7001,
    "name": "Instagram Followers Bundle",
    "category": "Instagram",
}
bundle = partial(make_service, **BUNDLE, rate="1.20", min=100, max=10000)


def fill_form(service: Service, typed: Mapping[str, str] = TYPED) -> dict[str, object]:
    """Answer every step the form asks, as a customer would; "" skips an optional step."""
    answers: dict[str, object] = {}
    while (field := next_field(service, answers)) is not None:
        text = typed[field.name]
        if field.optional and not text:
            answers[field.name] = None
        else:
            answers[field.name] = validate_field(field.name, text, service, answers)
    return answers


async def sandbox_charge(raw: dict[str, Any], answers: Mapping[str, object]) -> Decimal:
    """Place the form's `add` on a sandbox panel serving ``raw``; the charge it reports."""
    service = Service.model_validate(raw)
    async with (
        SandboxPanel(services=[raw], step_seconds=3600) as sandbox,
        PanelClient(sandbox.url or "", sandbox.api_key, retries=0) as client,
    ):
        order = await client.add(service.id, **add_arguments(service, answers))
        status = await client.status(order)
    assert status.error is None and status.charge is not None
    return status.charge


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    i18n = create_i18n("en")
    with i18n.context(), i18n.use_locale("en"):
        yield


# --- one type, however it is spelled ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Package", ServiceType.PACKAGE),
        ("package", ServiceType.PACKAGE),
        ("PACKAGE", ServiceType.PACKAGE),
        (" Custom  Comments  Package ", ServiceType.CUSTOM_COMMENTS_PACKAGE),
        ("mentions WITH hashtags", ServiceType.MENTIONS_WITH_HASHTAGS),
        ("seo", ServiceType.SEO),
        ("Subscriptions", ServiceType.SUBSCRIPTIONS),
        ("Followers Package", ServiceType.DEFAULT),
        ("Packages", ServiceType.DEFAULT),
    ],
)
def test_a_type_name_is_normalised_once(name: str, expected: ServiceType) -> None:
    assert service_type(name) is expected
    assert service_type(bundle(type=name)) is expected


def test_a_blank_type_is_default_and_an_unknown_one_is_not_known() -> None:
    assert service_type(bundle(type="")) is ServiceType.DEFAULT
    assert not is_known_type("Followers Package")
    assert is_known_type(" custom comments ")


def test_every_documented_type_is_known_by_its_own_name() -> None:
    for member in ServiceType:
        assert is_known_type(member.value)
        assert service_type(member.value) is member


def test_packages_and_quantity_sources() -> None:
    assert {t for t in ServiceType if is_package(t)} == {
        ServiceType.PACKAGE,
        ServiceType.CUSTOM_COMMENTS_PACKAGE,
    }
    assert quantity_source("Default") is QuantitySource.TYPED
    assert quantity_source("Followers Package") is QuantitySource.TYPED
    assert quantity_source("package") is QuantitySource.ABSENT
    assert quantity_source("Subscriptions") is QuantitySource.ABSENT
    lines = {
        t: counted_field(t) for t in ServiceType if quantity_source(t) is QuantitySource.LINES
    }
    assert lines == {
        ServiceType.CUSTOM_COMMENTS: "comments",
        ServiceType.MENTIONS_CUSTOM_LIST: "usernames",
        ServiceType.COMMENT_REPLIES: "comments",
    }
    assert counted_field("Custom Comments Package") is None


# --- the form and the sandbox ask the same rules ----------------------------------------------


def test_the_sandbox_knows_every_type() -> None:
    assert set(TYPE_RULES) == set(ServiceType)


@pytest.mark.parametrize("kind", list(ServiceType))
def test_form_steps_agree_with_the_type_rules(kind: ServiceType) -> None:
    steps = steps_for(bundle(type=kind.value))
    names = [step.name for step in steps]
    assert {step.name for step in steps if not step.optional} == set(TYPE_RULES[kind].needs)
    assert tuple(name for name in names if name in LIST_FIELDS) == list_fields(kind)
    assert ("quantity" in names) is (quantity_source(kind) is QuantitySource.TYPED)
    if (field := counted_field(kind)) is not None:
        assert field in names


def test_an_unknown_type_asks_and_takes_what_default_does() -> None:
    for dripfeed in (False, True):
        unknown = bundle(type="Followers Package", dripfeed=dripfeed)
        default = bundle(type="Default", dripfeed=dripfeed)
        assert steps_for(unknown) == steps_for(default)
    assert list_fields("Followers Package") == ()


# --- one price: button, card, form and charge -------------------------------------------------


def quoted_price(service: Service) -> tuple[str, str]:
    """The button line and the card's price line, as the customer reads them."""
    card = service_card(service, TEAM_PRICES).splitlines()
    return service_line(service, TEAM_PRICES), next(x for x in card if x.startswith("Price:"))


@pytest.mark.parametrize(
    ("type_", "extra", "steps", "quantity", "runs"),
    [
        ("Followers Package", {}, ["link", "quantity"], 2500, 1),
        ("followers  PACKAGE", {"dripfeed": True}, ["link", "quantity", "dripfeed", "runs",
                                                    "interval"], 2500, 3),
        ("Default", {}, ["link", "quantity"], 2500, 1),
    ],
)  # fmt: skip
async def test_an_unknown_type_is_quoted_and_charged_per_1000(
    type_: str, extra: dict[str, Any], steps: list[str], quantity: int, runs: int
) -> None:
    raw = panel_service(**BUNDLE, type=type_, rate="1.20", min=100, max=10000, **extra)
    service = Service.model_validate(raw)
    line, card_price = quoted_price(service)
    assert line == "Instagram Followers Bundle · 1.20 USD/1000 · 100–10,000"
    assert card_price == "Price: 1.20 USD per 1000"
    assert "Quantity: 100 to 10,000" in service_card(service, TEAM_PRICES)
    assert [step.name for step in steps_for(service)] == steps
    answers = fill_form(service)
    price = order_price(service, answers)
    assert price == Decimal("1.20") * quantity / 1000 * runs
    assert price_basis(service, answers) == "total"
    assert await sandbox_charge(raw, answers) == price


@pytest.mark.parametrize(
    ("type_", "steps"),
    [
        ("Package", ["link"]),
        ("package", ["link"]),
        ("PACKAGE", ["link"]),
        ("Custom Comments Package", ["link", "comments"]),
        (" Custom  Comments  Package ", ["link", "comments"]),
    ],
)
async def test_a_package_is_quoted_and_charged_its_rate(type_: str, steps: list[str]) -> None:
    raw = panel_service(**BUNDLE, type=type_, rate="4.20", min=1, max=1)
    service = Service.model_validate(raw)
    line, card_price = quoted_price(service)
    assert line == "Instagram Followers Bundle · 4.20 USD"
    assert card_price == "Price: 4.20 USD"
    assert "Quantity:" not in service_card(service, TEAM_PRICES)
    assert [step.name for step in steps_for(service)] == steps
    answers = fill_form(service)
    assert order_price(service, answers) == Decimal("4.20")
    assert await sandbox_charge(raw, answers) == Decimal("4.20")


async def test_a_list_type_is_charged_for_its_lines() -> None:
    raw = panel_service(**BUNDLE, type=" custom comments", rate="8", min=1, max=100)
    service = Service.model_validate(raw)
    assert format_money(service.rate, CURRENCY) in service_line(service, TEAM_PRICES)
    answers = fill_form(service)
    assert order_price(service, answers) == Decimal("0.024")  # 3 lines × 8 / 1000
    assert await sandbox_charge(raw, answers) == Decimal("0.024")


# --- subscriptions: open-ended or bounded ------------------------------------------------------


def test_a_subscription_without_new_posts_is_open_ended() -> None:
    assert is_subscription(" SUBSCRIPTIONS ")
    assert is_open_ended("Subscriptions", None)
    assert is_open_ended("subscriptions", 0)
    assert not is_open_ended("Subscriptions", 5)
    assert not is_open_ended("Default", None)
    assert services.price_basis("Subscriptions", None) == "per_post"
    assert services.price_basis("Subscriptions", 5) == "up_to"
    assert services.price_basis("Followers Package", None) == "total"


@pytest.mark.parametrize(
    ("posts", "old_posts", "basis", "price"),
    [
        ("", "", "per_post", "0.03"),  # both skipped: at most max per post
        ("0", "", "per_post", "0.03"),
        ("10", "5", "up_to", "0.45"),  # at most max on each of 15 posts
        ("10", "", "up_to", "0.30"),
    ],
)
async def test_a_subscription_is_quoted_and_charged_alike(
    posts: str, old_posts: str, basis: str, price: str
) -> None:
    raw = panel_service(**BUNDLE, type="subscriptions", rate="0.15", min=50, max=5000)
    service = Service.model_validate(raw)
    typed = TYPED | {"posts": posts, "old_posts": old_posts, "expiry": ""}
    answers: dict[str, object] = {}
    while (field := next_field(service, answers)) is not None:
        text = typed[field.name]
        answers[field.name] = (
            None
            if field.optional and not text
            else validate_field(field.name, text, service, answers)
        )
    assert price_basis(service, answers) == basis
    assert order_price(service, answers) == Decimal(price)
    assert await sandbox_charge(raw, answers) == Decimal(price)


# --- the price rule itself ---------------------------------------------------------------------


def test_price_per_1000_times_runs_and_a_package_costs_its_rate() -> None:
    service = bundle(type="Default", rate="0.90")
    assert services.order_price(service, OrderFigures(quantity=1000)) == Decimal("0.90")
    assert services.order_price(service, OrderFigures(quantity=1500, runs=3)) == Decimal("4.05")
    package = bundle(type="Package", rate="2.50", min=1, max=1)
    assert services.order_price(package, OrderFigures()) == Decimal("2.50")
    assert services.order_price(package, OrderFigures(quantity=7, runs=3)) == Decimal("2.50")


def test_a_missing_figure_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="quantity"):
        services.order_price(bundle(type="Followers Package"), OrderFigures())
    with pytest.raises(ValueError, match="max"):
        services.order_price(bundle(type="Subscriptions"), OrderFigures(posts=3))
