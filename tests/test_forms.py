"""The order form: steps per service type, every validator, prices and the arguments of add."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bot.forms import (
    DELAY_CHOICES,
    MAX_LINK_LENGTH,
    Field,
    FormError,
    add_arguments,
    bounds_for,
    next_field,
    order_price,
    order_quantity,
    price_basis,
    steps_for,
    takes_at_name,
    validate_answer_number,
    validate_comments,
    validate_delay,
    validate_dripfeed,
    validate_expiry,
    validate_field,
    validate_groups,
    validate_hashtag,
    validate_hashtags,
    validate_interval,
    validate_keywords,
    validate_link,
    validate_max,
    validate_media,
    validate_min,
    validate_old_posts,
    validate_posts,
    validate_quantity,
    validate_runs,
    validate_username,
    validate_usernames,
)
from bot.panel.models import Service
from tests.factories import make_service

DEFAULT = make_service()
INSTAGRAM = make_service(name="Instagram Likes", category="Instagram")


def rejects(code: str, call: object, *args: object, **kwargs: object) -> FormError:
    assert callable(call)
    with pytest.raises(FormError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value
    return caught.value


# --- steps ---------------------------------------------------------------------------------


def names(service: Service) -> list[str]:
    return [field.name for field in steps_for(service)]


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        ("Default", ["link", "quantity"]),
        ("Package", ["link"]),
        ("Custom Comments", ["link", "comments"]),
        ("Custom Comments Package", ["link", "comments"]),
        ("Mentions", ["link", "quantity", "usernames"]),
        ("Mentions with Hashtags", ["link", "quantity", "usernames", "hashtags"]),
        ("Mentions Custom List", ["link", "usernames"]),
        ("Mentions Hashtag", ["link", "quantity", "hashtag"]),
        ("Mentions User Followers", ["link", "quantity", "username"]),
        ("Comment Likes", ["link", "quantity", "username"]),
        ("Mentions Media Likers", ["link", "quantity", "media"]),
        ("Poll", ["link", "quantity", "answer_number"]),
        ("Comment Replies", ["link", "username", "comments"]),
        ("Invites from Groups", ["link", "quantity", "groups"]),
        ("SEO", ["link", "quantity", "keywords"]),
        (
            "Subscriptions",
            ["username", "min", "max", "posts", "old_posts", "delay", "expiry"],
        ),
        ("Something New", ["link", "quantity"]),
        ("  custom   COMMENTS ", ["link", "comments"]),
    ],
)
def test_steps_by_type(type_: str, expected: list[str]) -> None:
    assert names(make_service(type=type_)) == expected


def test_drip_feed_steps_only_for_default_services_that_allow_it() -> None:
    drip = make_service(dripfeed=True)
    assert names(drip) == ["link", "quantity", "dripfeed", "runs", "interval"]
    steps = {field.name: field for field in steps_for(drip)}
    assert steps["dripfeed"].optional
    assert steps["runs"].requires == steps["interval"].requires == "dripfeed"
    assert "dripfeed" not in names(make_service(type="Mentions", dripfeed=True))
    # An unknown type is a Default service, drip-feed included (bot.services).
    assert names(make_service(type="Brand New Type", dripfeed=True)) == names(drip)


def test_optional_steps_are_marked() -> None:
    optional = {f.name for f in steps_for(make_service(type="Subscriptions")) if f.optional}
    assert optional == {"posts", "old_posts", "expiry"}
    assert not any(f.optional for f in steps_for(make_service(type="Mentions with Hashtags")))


def test_multiline_steps() -> None:
    assert Field("comments").multiline and Field("usernames").multiline
    assert not Field("username").multiline and not Field("link").multiline


def test_next_field_walks_the_form() -> None:
    drip = make_service(dripfeed=True)
    assert next_field(drip, {}) == Field("link")
    answers: dict[str, object] = {"link": "https://a.io/x", "quantity": 100}
    assert next_field(drip, answers) == Field("dripfeed", optional=True)
    assert next_field(drip, answers | {"dripfeed": None}) is None  # skipped
    assert next_field(drip, answers | {"dripfeed": False}) is None
    chosen = answers | {"dripfeed": True}
    assert next_field(drip, chosen) == Field("runs", requires="dripfeed")
    assert next_field(drip, chosen | {"runs": 3}) == Field("interval", requires="dripfeed")
    assert next_field(drip, chosen | {"runs": 3, "interval": 10}) is None


def test_bounds_for() -> None:
    service = make_service(type="Custom Comments", min=5, max=50)
    assert bounds_for("quantity", service) == (5, 50)
    assert bounds_for("comments", service) == (5, 50)
    assert bounds_for("keywords", service) == (1, 1000)
    assert bounds_for("runs", service) == (2, 1000)
    assert bounds_for("interval", service) == (1, 10080)
    assert bounds_for("link", service) is None


# --- link ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://instagram.com/p/abc", "https://instagram.com/p/abc"),
        ("  http://example.com  ", "http://example.com"),
        ("HTTPS://Example.COM/Path?q=1#x", "HTTPS://Example.COM/Path?q=1#x"),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        ),
        ("https://sub.example.co.uk:8443/a", "https://sub.example.co.uk:8443/a"),
        ("t.me/channel", "https://t.me/channel"),
        ("T.me/channel/15", "https://T.me/channel/15"),
        ("telegram.me/joinchat/AbC", "https://telegram.me/joinchat/AbC"),
        ("https://t.me/channel", "https://t.me/channel"),
        ("instagram.com/someone", "https://instagram.com/someone"),
        ("www.tiktok.com/@user/video/1", "https://www.tiktok.com/@user/video/1"),
        ("https://пример.рф/пост", "https://пример.рф/пост"),
    ],
)
def test_link_accepts(text: str, expected: str) -> None:
    assert validate_link(text, DEFAULT) == expected


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "https://localhost/x",
        "http://intranet/page",
        "ftp://example.com/file",
        "javascript:alert(1)",
        "https://",
        "https://exa mple.com",
        "https://example.com/a b",
        "https://example..com",
        "https://user:pass@example.com/",
        "https://example.com:99999/",
        "https://[::1/",
        "t.me/",
        "https://t.me",
        "1.5",
        "example",
        "@someone",  # not a network that takes @names
    ],
)
def test_link_rejects(text: str) -> None:
    rejects("link_invalid", validate_link, text, DEFAULT)


def test_link_empty_and_too_long() -> None:
    rejects("empty", validate_link, "   ", DEFAULT)
    long_link = "https://example.com/" + "a" * MAX_LINK_LENGTH
    error = rejects("link_too_long", validate_link, long_link, DEFAULT)
    assert error.params == {"max": MAX_LINK_LENGTH}
    fits = "https://example.com/" + "a" * (MAX_LINK_LENGTH - 20)
    assert validate_link(fits, DEFAULT) == fits


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("Instagram Followers", "Followers"),
        ("Followers", "Telegram"),
        ("Twitter Followers", "Social"),
        ("Followers", "X (Twitter)"),
        ("Followers", "Twitter/X"),
        ("TikTok Likes", "Likes"),
        ("Members", "TELEGRAM"),
    ],
)
def test_bare_at_name_for_networks_that_use_it(name: str, category: str) -> None:
    service = make_service(name=name, category=category)
    assert takes_at_name(service)
    assert validate_link("@some.user_1", service) == "@some.user_1"
    rejects("link_invalid", validate_link, "@", service)
    rejects("link_invalid", validate_link, "@bad name", service)
    rejects("link_invalid", validate_link, "@bad/name", service)


@pytest.mark.parametrize(
    ("name", "category"),
    [("Website Traffic", "Traffic"), ("YouTube Views", "YouTube"), ("Xbox Fans", "Gaming")],
)
def test_no_bare_at_name_elsewhere(name: str, category: str) -> None:
    assert not takes_at_name(make_service(name=name, category=category))


def test_media_is_a_web_address() -> None:
    service = make_service(type="Mentions Media Likers", name="Instagram Mentions")
    assert validate_media("instagram.com/p/xyz", service) == "https://instagram.com/p/xyz"
    rejects("media_invalid", validate_media, "@someone", service)
    rejects("media_invalid", validate_media, "not a link", service)
    rejects("media_too_long", validate_media, "https://a.io/" + "x" * 3000, service)
    rejects("empty", validate_media, "", service)


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", 1000),
        (" 250 ", 250),
        ("1 000", 1000),
        ("1,000", 1000),
        ("1_000", 1000),
        ("5\u00a0000", 5000),
        ("010", 10),
    ],
)
def test_quantity_accepts(text: str, expected: int) -> None:
    assert validate_quantity(text, DEFAULT) == expected


@pytest.mark.parametrize(
    "text",
    ["12.5", "-3", "+3", "abc", "1e3", "1,00", "1 000,000", "10 00", "1,,000", "١٠٠", "½", "3x"],
)
def test_quantity_rejects_what_is_not_a_whole_number(text: str) -> None:
    rejects("quantity_not_number", validate_quantity, text, DEFAULT)


@pytest.mark.parametrize("text", ["9", "5001", "0", "1,000,000", "9" * 5000])
def test_quantity_out_of_range(text: str) -> None:
    error = rejects("quantity_out_of_range", validate_quantity, text, DEFAULT)
    assert error.params == {"min": 10, "max": 5000}


def test_quantity_bounds_are_inclusive() -> None:
    assert validate_quantity("10", DEFAULT) == 10
    assert validate_quantity("5,000", DEFAULT) == 5000
    rejects("empty", validate_quantity, " ", DEFAULT)


@pytest.mark.parametrize(
    ("validator", "code", "low", "high"),
    [
        (validate_runs, "runs", 2, 1000),
        (validate_interval, "interval", 1, 10080),
        (validate_answer_number, "answer_number", 1, 100),
        (validate_posts, "posts", 0, 10000),
        (validate_old_posts, "old_posts", 0, 10000),
    ],
)
def test_fixed_ranges(validator: object, code: str, low: int, high: int) -> None:
    assert callable(validator)
    assert validator(str(low), DEFAULT) == low
    assert validator(str(high), DEFAULT) == high
    error = rejects(f"{code}_out_of_range", validator, str(high + 1), DEFAULT)
    assert error.params == {"min": low, "max": high}
    if low > 0:
        rejects(f"{code}_out_of_range", validator, str(low - 1), DEFAULT)
    rejects(f"{code}_not_number", validator, "two", DEFAULT)
    rejects(f"{code}_not_number", validator, "2.5", DEFAULT)


def test_dripfeed_answers() -> None:
    for yes in ["yes", "YES", " y ", "1", "oo"]:
        assert validate_dripfeed(yes, DEFAULT) is True
    for no in ["no", "N", "0", "hindi"]:
        assert validate_dripfeed(no, DEFAULT) is False
    rejects("dripfeed_invalid", validate_dripfeed, "maybe", DEFAULT)
    rejects("empty", validate_dripfeed, "", DEFAULT)


# --- lists ---------------------------------------------------------------------------------


def test_list_lines_are_stripped_and_blank_lines_dropped() -> None:
    assert validate_comments(" Nice!\n\n  Great post  \r\n\t\n", DEFAULT) == [
        "Nice!",
        "Great post",
    ]
    assert validate_keywords("buy shoes\ncheap shoes", DEFAULT) == ["buy shoes", "cheap shoes"]
    assert validate_groups("@group_one\nhttps://t.me/two", DEFAULT) == [
        "@group_one",
        "https://t.me/two",
    ]


def test_list_rejects_empty_and_long_lines() -> None:
    rejects("empty", validate_comments, "\n \n", DEFAULT)
    error = rejects("line_too_long", validate_comments, "ok\n" + "x" * 501, DEFAULT)
    assert error.params == {"line": 2, "max": 500}
    assert validate_comments("x" * 500, DEFAULT) == ["x" * 500]


def test_list_lines_are_bounded_by_1000_when_not_the_quantity() -> None:
    mentions = make_service(type="Mentions", min=10, max=20)
    assert len(validate_usernames("\n".join(f"user{n}" for n in range(1000)), mentions)) == 1000
    error = rejects("too_many_lines", validate_keywords, "k\n" * 1001, mentions)
    assert error.params == {"max": 1000, "count": 1001}
    assert validate_usernames("one", mentions) == ["one"]  # min of the service is the quantity's


def test_list_lines_are_the_quantity_for_custom_comments() -> None:
    service = make_service(type="Custom Comments", min=3, max=5)
    assert len(validate_comments("a\nb\nc", service)) == 3
    error = rejects("too_few_lines", validate_comments, "a\nb", service)
    assert error.params == {"min": 3, "count": 2}
    error = rejects("too_many_lines", validate_comments, "a\nb\nc\nd\ne\nf", service)
    assert error.params == {"max": 5, "count": 6}


def test_list_lines_are_the_quantity_for_mentions_custom_list() -> None:
    service = make_service(type="Mentions Custom List", min=2, max=3)
    assert validate_usernames("@a\nb", service) == ["a", "b"]
    rejects("too_few_lines", validate_usernames, "@a", service)
    rejects("too_many_lines", validate_usernames, "a\nb\nc\nd", service)


def test_package_comments_are_not_bounded_by_the_package_quantity() -> None:
    package = make_service(type="Custom Comments Package", min=1, max=1)
    assert len(validate_comments("a\nb\nc", package)) == 3


def test_usernames() -> None:
    assert validate_usernames("@john.doe\njane_99\n  @X  ", DEFAULT) == [
        "john.doe",
        "jane_99",
        "X",
    ]
    error = rejects("username_invalid", validate_usernames, "ok\nbad name\n", DEFAULT)
    assert error.params == {"value": "bad name", "line": 2}
    rejects("username_invalid", validate_usernames, "@", DEFAULT)
    rejects("username_invalid", validate_usernames, "@@double", DEFAULT)
    rejects("username_invalid", validate_usernames, "a" * 65, DEFAULT)
    rejects("username_invalid", validate_usernames, "émile", DEFAULT)


def test_single_username() -> None:
    assert validate_username(" @someone ", DEFAULT) == "someone"
    assert validate_username("some.one_2", DEFAULT) == "some.one_2"
    error = rejects("username_invalid", validate_username, "two words", DEFAULT)
    assert error.params == {"value": "two words", "line": None}
    rejects("username_invalid", validate_username, "a\nb", DEFAULT)
    rejects("empty", validate_username, "", DEFAULT)


def test_hashtags() -> None:
    assert validate_hashtags("#summer\nbeach\n#café_2024", DEFAULT) == [
        "summer",
        "beach",
        "café_2024",
    ]
    error = rejects("hashtag_invalid", validate_hashtags, "ok\n#two words", DEFAULT)
    assert error.params == {"value": "#two words", "line": 2}
    rejects("hashtag_invalid", validate_hashtags, "#", DEFAULT)
    rejects("hashtag_invalid", validate_hashtags, "##double", DEFAULT)
    assert validate_hashtag("#travel", DEFAULT) == "travel"
    assert validate_hashtag("travel", DEFAULT) == "travel"
    rejects("hashtag_invalid", validate_hashtag, "#a-b", DEFAULT)
    rejects("empty", validate_hashtag, " ", DEFAULT)


# --- subscriptions -------------------------------------------------------------------------

SUBSCRIPTION = make_service(
    type="Subscriptions", name="Instagram Auto Likes", category="Instagram", min=50, max=500
)


def test_subscription_min_and_max() -> None:
    assert validate_min("50", SUBSCRIPTION) == 50
    error = rejects("min_out_of_range", validate_min, "49", SUBSCRIPTION)
    assert error.params == {"min": 50, "max": 500}
    assert validate_max("100", SUBSCRIPTION, minimum=100) == 100
    error = rejects("max_below_min", validate_max, "99", SUBSCRIPTION, minimum=100)
    assert error.params == {"min": 100}
    rejects("max_out_of_range", validate_max, "501", SUBSCRIPTION, minimum=100)
    assert validate_max("60", SUBSCRIPTION) == 60


def test_max_is_checked_against_the_min_answered_before() -> None:
    error = rejects(
        "max_below_min", validate_field, "max", "80", SUBSCRIPTION, {"username": "a", "min": 90}
    )
    assert error.field == "max"
    assert validate_field("max", "90", SUBSCRIPTION, {"min": 90}) == 90


@pytest.mark.parametrize("minutes", DELAY_CHOICES)
def test_delay_accepts_the_standard_choices(minutes: int) -> None:
    assert validate_delay(str(minutes), SUBSCRIPTION) == minutes


@pytest.mark.parametrize("text", ["1", "20", "120", "-5", "five", "5.0", "١٥"])
def test_delay_rejects_other_values(text: str) -> None:
    error = rejects("delay_invalid", validate_delay, text, SUBSCRIPTION)
    assert error.params == {"choices": "0, 5, 10, 15, 30, 60, 90"}


TODAY = date(2025, 3, 15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15/3/2025", "15/03/2025"),
        ("01/04/2025", "01/04/2025"),
        ("1-4-2025", "01/04/2025"),
        ("31.12.2030", "31/12/2030"),
        (" 29/02/2028 ", "29/02/2028"),
    ],
)
def test_expiry_accepts(text: str, expected: str) -> None:
    assert validate_expiry(text, SUBSCRIPTION, today=TODAY) == expected


@pytest.mark.parametrize(
    "text", ["2025-4-31", "1/4/25", "31/02/2026", "29/02/2027", "1/13/2026", "1/4-2026", "soon"]
)
def test_expiry_rejects_malformed_dates(text: str) -> None:
    rejects("date_invalid", validate_expiry, text, SUBSCRIPTION, today=TODAY)


def test_expiry_rejects_the_past() -> None:
    rejects("date_in_past", validate_expiry, "14/03/2025", SUBSCRIPTION, today=TODAY)
    rejects("date_in_past", validate_expiry, "01/01/2000", SUBSCRIPTION)


# --- the generic entry point -----------------------------------------------------------------


def test_validate_field_dispatches_and_names_the_field() -> None:
    assert validate_field("quantity", "1 000", DEFAULT, {}) == 1000
    assert validate_field("usernames", "@a\n@b", DEFAULT, {}) == ["a", "b"]
    assert validate_field("expiry", "1/1/2999", SUBSCRIPTION, {}) == "01/01/2999"
    with pytest.raises(FormError) as caught:
        validate_field("link", "nope", DEFAULT, {})
    assert (caught.value.code, caught.value.field) == ("link_invalid", "link")
    with pytest.raises(ValueError, match="no such form field"):
        validate_field("colour", "red", DEFAULT, {})


def test_every_step_has_a_validator() -> None:
    types = ["Default", "Subscriptions", "Mentions with Hashtags", "Poll", "SEO",
             "Invites from Groups", "Mentions Media Likers", "Comment Likes", "Mentions Hashtag",
             "Comment Replies", "Custom Comments"]  # fmt: skip
    for type_ in types:
        for field in steps_for(make_service(type=type_, dripfeed=True)):
            with pytest.raises(FormError):
                validate_field(field.name, "", make_service(type=type_), {})


# --- pricing -------------------------------------------------------------------------------


def test_price_default() -> None:
    assert order_price(DEFAULT, {"link": "https://a.io/x", "quantity": 1000}) == Decimal("0.90")
    cheap = make_service(rate="0.0315")
    assert order_price(cheap, {"quantity": 2500}) == Decimal("0.07875")
    assert order_quantity(cheap, {"quantity": 2500}) == 2500
    assert price_basis(cheap, {"quantity": 2500}) == "total"


def test_price_drip_feed_multiplies_by_runs_only_when_chosen() -> None:
    drip = make_service(dripfeed=True)
    base = {"link": "https://a.io/x", "quantity": 1000}
    assert order_price(drip, base | {"dripfeed": True, "runs": 3, "interval": 10}) == Decimal(
        "2.70"
    )
    assert order_price(drip, base | {"dripfeed": None}) == Decimal("0.90")
    assert order_price(drip, base | {"dripfeed": False, "runs": 3}) == Decimal("0.90")


def test_package_costs_its_rate() -> None:
    package = make_service(type="Package", rate="12.50", min=1, max=1)
    assert order_price(package, {"link": "https://a.io/x"}) == Decimal("12.50")
    assert order_quantity(package, {"link": "https://a.io/x"}) is None
    comments_package = make_service(type="Custom Comments Package", rate="3")
    answers = {"link": "https://a.io/x", "comments": ["a", "b", "c"]}
    assert order_price(comments_package, answers) == Decimal("3")
    assert order_quantity(comments_package, answers) is None


def test_list_types_count_lines() -> None:
    custom = make_service(type="Custom Comments", rate="8")
    answers = {"link": "https://a.io/x", "comments": [f"c{n}" for n in range(7)]}
    assert order_quantity(custom, answers) == 7
    assert order_price(custom, answers) == Decimal("0.056")
    mentions_list = make_service(type="Mentions Custom List", rate="2")
    assert order_quantity(mentions_list, {"usernames": ["a", "b"]}) == 2
    replies = make_service(type="Comment Replies", rate="10")
    answers = {"link": "https://a.io/x", "username": "u", "comments": ["x", "y", "z"]}
    assert order_quantity(replies, answers) == 3
    assert order_price(replies, answers) == Decimal("0.030")


def test_typed_quantity_wins_over_list_lengths() -> None:
    mentions = make_service(type="Mentions", rate="1")
    answers = {"link": "https://a.io/x", "quantity": 500, "usernames": ["a", "b"]}
    assert order_quantity(mentions, answers) == 500
    assert order_price(mentions, answers) == Decimal("0.5")


def test_subscription_price_is_a_ceiling() -> None:
    answers: dict[str, object] = {"username": "u", "min": 100, "max": 200, "delay": 0}
    # Open-ended: at most max per post.
    assert order_price(SUBSCRIPTION, answers | {"posts": None}) == Decimal("0.18")
    assert price_basis(SUBSCRIPTION, answers | {"posts": None}) == "per_post"
    assert price_basis(SUBSCRIPTION, answers | {"posts": 0}) == "per_post"
    # A number of posts (new + old): at most that many times max.
    counted = answers | {"posts": 10, "old_posts": 5}
    assert order_price(SUBSCRIPTION, counted) == Decimal("2.70")
    assert price_basis(SUBSCRIPTION, counted) == "up_to"
    assert order_quantity(SUBSCRIPTION, counted) is None


def test_pricing_an_incomplete_form_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        order_price(DEFAULT, {"link": "https://a.io/x"})
    with pytest.raises(ValueError):
        order_price(DEFAULT, {"quantity": "1000"})
    with pytest.raises(ValueError):
        order_quantity(make_service(type="Custom Comments"), {"comments": "a\nb"})


# --- arguments of add ----------------------------------------------------------------------

LINK = "https://a.io/x"


@pytest.mark.parametrize(
    ("type_", "answers", "expected"),
    [
        ("Default", {"link": LINK, "quantity": 100}, {"link": LINK, "quantity": 100}),
        ("Package", {"link": LINK}, {"link": LINK}),
        (
            "Custom Comments",
            {"link": LINK, "comments": ["a", "b"]},
            {"link": LINK, "comments": "a\nb"},
        ),
        (
            "Custom Comments Package",
            {"link": LINK, "comments": ["a"]},
            {"link": LINK, "comments": "a"},
        ),
        (
            "Mentions",
            {"link": LINK, "quantity": 10, "usernames": ["a", "b"]},
            {"link": LINK, "quantity": 10, "usernames": "a\nb"},
        ),
        (
            "Mentions with Hashtags",
            {"link": LINK, "quantity": 10, "usernames": ["a"], "hashtags": ["x", "y"]},
            {"link": LINK, "quantity": 10, "usernames": "a", "hashtags": "x\ny"},
        ),
        (
            "Mentions Custom List",
            {"link": LINK, "usernames": ["a", "b"]},
            {"link": LINK, "usernames": "a\nb"},
        ),
        (
            "Mentions Hashtag",
            {"link": LINK, "quantity": 10, "hashtag": "x"},
            {"link": LINK, "quantity": 10, "hashtag": "x"},
        ),
        (
            "Mentions User Followers",
            {"link": LINK, "quantity": 10, "username": "u"},
            {"link": LINK, "quantity": 10, "username": "u"},
        ),
        (
            "Comment Likes",
            {"link": LINK, "quantity": 10, "username": "u"},
            {"link": LINK, "quantity": 10, "username": "u"},
        ),
        (
            "Mentions Media Likers",
            {"link": LINK, "quantity": 10, "media": "https://m.io/p"},
            {"link": LINK, "quantity": 10, "media": "https://m.io/p"},
        ),
        (
            "Poll",
            {"link": LINK, "quantity": 10, "answer_number": 2},
            {"link": LINK, "quantity": 10, "answer_number": 2},
        ),
        (
            "Comment Replies",
            {"link": LINK, "username": "u", "comments": ["a", "b"]},
            {"link": LINK, "username": "u", "comments": "a\nb"},
        ),
        (
            "Invites from Groups",
            {"link": LINK, "quantity": 10, "groups": ["g1", "g2"]},
            {"link": LINK, "quantity": 10, "groups": "g1\ng2"},
        ),
        (
            "SEO",
            {"link": LINK, "quantity": 10, "keywords": ["k"]},
            {"link": LINK, "quantity": 10, "keywords": "k"},
        ),
        (
            "Subscriptions",
            {"username": "u", "min": 10, "max": 20, "posts": None, "old_posts": None,
             "delay": 0, "expiry": None},
            {"username": "u", "min": 10, "max": 20, "delay": 0},
        ),
        (
            "Subscriptions",
            {"username": "u", "min": 10, "max": 20, "posts": 5, "old_posts": 0, "delay": 30,
             "expiry": "01/02/2030"},
            {"username": "u", "min": 10, "max": 20, "posts": 5, "old_posts": 0, "delay": 30,
             "expiry": "01/02/2030"},
        ),
        ("Unheard Of", {"link": LINK, "quantity": 10}, {"link": LINK, "quantity": 10}),
    ],
)  # fmt: skip
def test_add_arguments(
    type_: str, answers: dict[str, object], expected: dict[str, object]
) -> None:
    assert add_arguments(make_service(type=type_), answers) == expected


def test_add_arguments_for_drip_feed() -> None:
    drip = make_service(dripfeed=True)
    base = {"link": LINK, "quantity": 100}
    chosen = base | {"dripfeed": True, "runs": 3, "interval": 15}
    assert add_arguments(drip, chosen) == base | {"runs": 3, "interval": 15}
    assert add_arguments(drip, base | {"dripfeed": None}) == base
    assert add_arguments(drip, base | {"dripfeed": False}) == base


def test_add_arguments_ignores_answers_the_type_does_not_take() -> None:
    answers = {"link": LINK, "quantity": 100, "comments": ["stray"], "runs": 4}
    assert add_arguments(DEFAULT, answers) == {"link": LINK, "quantity": 100}


def test_add_arguments_of_an_incomplete_form_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="quantity"):
        add_arguments(DEFAULT, {"link": LINK})


def test_a_whole_conversation_through_the_generic_entry_point() -> None:
    service = make_service(type="Mentions with Hashtags", name="Instagram Mentions", rate="4")
    typed = {
        "link": "@target",
        "quantity": "1,000",
        "usernames": "@one\n\n@two",
        "hashtags": "#a\nb",
    }
    answers: dict[str, object] = {}
    while (field := next_field(service, answers)) is not None:
        answers[field.name] = validate_field(field.name, typed[field.name], service, answers)
    assert order_price(service, answers) == Decimal("4")
    assert add_arguments(service, answers) == {
        "link": "@target",
        "quantity": 1000,
        "usernames": "one\ntwo",
        "hashtags": "a\nb",
    }


def test_an_expiry_date_may_be_written_the_iso_way() -> None:
    service = make_service(type="Subscriptions")
    today = date(2026, 12, 1)
    assert validate_expiry("2026-12-31", service, today=today) == "31/12/2026"
    assert validate_expiry("31/12/2026", service, today=today) == "31/12/2026"
    for wrong in ("2026-13-01", "2026-02-30", "26-12-31"):
        with pytest.raises(FormError):
            validate_expiry(wrong, service, today=today)
