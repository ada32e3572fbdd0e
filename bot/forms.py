"""The order form: which answers each service type needs, how each is checked, and the price.

Pure functions over a ``Service`` and the answers collected so far. Answers are JSON-friendly
(int, str, bool, list[str], or None for a skipped optional step) because FSM storage keeps them
as JSON. Errors are ``FormError`` codes, never sentences: the UI layer localizes them. What a
type is, where its quantity comes from and how it is priced are ``bot.services``' rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final, Literal
from urllib.parse import urlsplit

from bot import services
from bot.panel.models import Service
from bot.services import (
    LIST_FIELDS,
    OrderFigures,
    PriceBasis,
    QuantitySource,
    ServiceType,
    counted_field,
    quantity_source,
    service_type,
)

FieldName = Literal[
    "link", "quantity", "dripfeed", "runs", "interval", "comments", "usernames", "hashtags",
    "hashtag", "username", "media", "answer_number", "groups", "keywords", "min", "max", "posts",
    "old_posts", "delay", "expiry",
]  # fmt: skip
Answers = Mapping[str, object]

MAX_LINK_LENGTH: Final = 2048
MAX_LINE_LENGTH: Final = 500
MAX_LIST_LINES: Final = 1000
MAX_USERNAME_LENGTH: Final = 64
DELAY_CHOICES: Final = (0, 5, 10, 15, 30, 60, 90)  # minutes: the standard panel set
EXPIRY_FORMAT: Final = "%d/%m/%Y"

# Fixed bounds of numeric answers that do not depend on the service.
_FIXED_BOUNDS: Final[Mapping[str, tuple[int, int]]] = {
    "runs": (2, 1000),
    "interval": (1, 10080),  # minutes: up to a week
    "answer_number": (1, 100),
    "posts": (0, 10000),
    "old_posts": (0, 10000),
}


class FormError(ValueError):
    """An answer was rejected: ``code`` names the rule, ``params`` fill the localized message.

    ``field`` is set by ``validate_field`` to the step that rejected the answer.
    """

    def __init__(self, code: str, /, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params
        self.field: str | None = None

    def __repr__(self) -> str:
        return f"FormError({self.code!r}, field={self.field!r}, params={self.params!r})"


@dataclass(frozen=True, slots=True)
class Field:
    """One step of the form. An ``optional`` step gets a Skip button (its answer is None)."""

    name: FieldName
    optional: bool = False
    requires: FieldName | None = None  # asked only when this earlier answer is true

    @property
    def multiline(self) -> bool:
        """One item per line (comments, usernames…)."""
        return self.name in LIST_FIELDS

    def applies(self, answers: Answers) -> bool:
        return self.requires is None or answers.get(self.requires) is True


# --- steps by service type -----------------------------------------------------------------

_LINK = Field("link")
_QUANTITY = Field("quantity")
_DRIPFEED = (
    Field("dripfeed", optional=True),
    Field("runs", requires="dripfeed"),
    Field("interval", requires="dripfeed"),
)

_STEPS: Final[Mapping[ServiceType, tuple[Field, ...]]] = {
    ServiceType.DEFAULT: (_LINK, _QUANTITY),
    ServiceType.PACKAGE: (_LINK,),
    ServiceType.CUSTOM_COMMENTS: (_LINK, Field("comments")),
    ServiceType.CUSTOM_COMMENTS_PACKAGE: (_LINK, Field("comments")),
    ServiceType.MENTIONS: (_LINK, _QUANTITY, Field("usernames")),
    ServiceType.MENTIONS_WITH_HASHTAGS: (_LINK, _QUANTITY, Field("usernames"), Field("hashtags")),
    ServiceType.MENTIONS_CUSTOM_LIST: (_LINK, Field("usernames")),
    ServiceType.MENTIONS_HASHTAG: (_LINK, _QUANTITY, Field("hashtag")),
    ServiceType.MENTIONS_USER_FOLLOWERS: (_LINK, _QUANTITY, Field("username")),
    ServiceType.COMMENT_LIKES: (_LINK, _QUANTITY, Field("username")),
    ServiceType.MENTIONS_MEDIA_LIKERS: (_LINK, _QUANTITY, Field("media")),
    ServiceType.POLL: (_LINK, _QUANTITY, Field("answer_number")),
    ServiceType.COMMENT_REPLIES: (_LINK, Field("username"), Field("comments")),
    ServiceType.INVITES_FROM_GROUPS: (_LINK, _QUANTITY, Field("groups")),
    ServiceType.SEO: (_LINK, _QUANTITY, Field("keywords")),
    ServiceType.SUBSCRIPTIONS: (
        Field("username"),
        Field("min"),
        Field("max"),
        Field("posts", optional=True),
        Field("old_posts", optional=True),
        Field("delay"),
        Field("expiry", optional=True),
    ),
}


def steps_for(service: Service) -> list[Field]:
    """The steps of the form in the order they are asked; unknown types ask like Default."""
    kind = service_type(service)
    steps = list(_STEPS[kind])
    if kind is ServiceType.DEFAULT and service.dripfeed:
        steps.extend(_DRIPFEED)
    return steps


def next_field(service: Service, answers: Answers) -> Field | None:
    """The first step still to ask (skipping drip-feed details when drip-feed was declined);
    None when the form is complete."""
    for field in steps_for(service):
        if field.name not in answers and field.applies(answers):
            return field
    return None


def bounds_for(name: str, service: Service) -> tuple[int, int] | None:
    """Inclusive bounds of a numeric answer, or of the number of lines of a list answer."""
    if name in ("quantity", "min", "max"):
        return service.min, service.max
    if name in LIST_FIELDS:
        return _line_bounds(name, service)
    return _FIXED_BOUNDS.get(name)


def _line_bounds(name: str, service: Service) -> tuple[int, int]:
    if counted_field(service) == name:
        return max(service.min, 1), service.max
    return 1, MAX_LIST_LINES


# --- validators: text → answer, or FormError ------------------------------------------------

_GROUPED_NUMBER = re.compile(r"[0-9]{1,3}([ ,_\u00a0\u202f])[0-9]{3}(?:\1[0-9]{3})*")
_PLAIN_NUMBER = re.compile(r"[0-9]+")
_MAX_DIGITS = 18  # beyond this a number is out of any range; int() of huge strings is slow
_USERNAME = re.compile(rf"[A-Za-z0-9._]{{1,{MAX_USERNAME_LENGTH}}}")
_HASHTAG = re.compile(r"\w+")
_ISO_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_DATE = re.compile(r"([0-9]{1,2})([/.\-])([0-9]{1,2})\2([0-9]{4})")
_TELEGRAM_PREFIXES = ("t.me/", "telegram.me/")
_TELEGRAM_HOSTS = frozenset({"t.me", "telegram.me"})
# Networks whose customers write an account as @name instead of a link.
_AT_NAME_NETWORKS = frozenset({"telegram", "twitter", "x", "instagram", "tiktok"})
_YES = frozenset({"yes", "y", "1", "true", "on", "oo"})
_NO = frozenset({"no", "n", "0", "false", "off", "hindi"})


def _required(text: str) -> str:
    value = text.strip()
    if not value:
        raise FormError("empty")
    return value


def _whole_number(text: str, field: str, low: int, high: int) -> int:
    value = _required(text)
    if not (_PLAIN_NUMBER.fullmatch(value) or _GROUPED_NUMBER.fullmatch(value)):
        raise FormError(f"{field}_not_number")
    digits = re.sub(r"[^0-9]", "", value)
    number = int(digits) if len(digits) <= _MAX_DIGITS else None
    if number is None or not low <= number <= high:
        raise FormError(f"{field}_out_of_range", min=low, max=high)
    return number


def _bounded(text: str, field: str, service: Service) -> int:
    bounds = bounds_for(field, service)
    assert bounds is not None, field
    return _whole_number(text, field, *bounds)


def validate_link(text: str, service: Service) -> str:
    """An http(s) URL, ``t.me/…`` (given https://), or ``@name`` for the networks that use it."""
    link = _web_text(text, "link")
    if link.startswith("@"):
        if _USERNAME.fullmatch(link[1:]) and takes_at_name(service):
            return link
        raise FormError("link_invalid")
    return _web_address(link, "link")


def validate_media(text: str, service: Service) -> str:
    """The URL of a post (its likers are mentioned)."""
    return _web_address(_web_text(text, "media"), "media")


def takes_at_name(service: Service) -> bool:
    """Whether a bare ``@name`` is a usable link: Telegram, Twitter/X, Instagram, TikTok."""
    words = re.findall(r"[^\W_]+", f"{service.name} {service.category}".casefold())
    return not _AT_NAME_NETWORKS.isdisjoint(words)


def _web_text(text: str, field: str) -> str:
    value = _required(text)
    if len(value) > MAX_LINK_LENGTH:
        raise FormError(f"{field}_too_long", max=MAX_LINK_LENGTH)
    if any(char.isspace() for char in value):
        raise FormError(f"{field}_invalid")
    return value


def _web_address(link: str, field: str) -> str:
    if link.casefold().startswith(_TELEGRAM_PREFIXES) or (
        "://" not in link and _starts_with_domain(link)
    ):
        link = f"https://{link}"
    try:
        parts = urlsplit(link)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise FormError(f"{field}_invalid") from None
    host = parts.hostname or ""
    if (
        parts.scheme.casefold() not in ("http", "https")
        or parts.username is not None
        or not _is_domain(host)
        or (host in _TELEGRAM_HOSTS and parts.path.strip("/") == "")
    ):
        raise FormError(f"{field}_invalid")
    return link


def _starts_with_domain(link: str) -> bool:
    # "instagram.com/p/xyz" is a link without its scheme; "hello" or "1.5" is not.
    host = re.split(r"[/?#]", link, maxsplit=1)[0]
    labels = host.split(".")
    return len(labels) > 1 and _is_domain(host) and labels[-1].isalpha() and len(labels[-1]) > 1


def _is_domain(host: str) -> bool:
    # A dot is required: "localhost" or an intranet name is never a public post.
    labels = host.split(".")
    return len(labels) > 1 and all(
        label and all(char.isalnum() or char == "-" for char in label) for label in labels
    )


def validate_quantity(text: str, service: Service) -> int:
    """A whole number (thousands may be grouped by space, comma or _) within min..max."""
    return _bounded(text, "quantity", service)


def validate_dripfeed(text: str, service: Service) -> bool:
    """Yes or no (the UI offers Yes and Skip; typed answers are accepted too)."""
    value = _required(text).casefold()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise FormError("dripfeed_invalid")


def validate_runs(text: str, service: Service) -> int:
    return _bounded(text, "runs", service)


def validate_interval(text: str, service: Service) -> int:
    """Minutes between drip-feed runs."""
    return _bounded(text, "interval", service)


def validate_answer_number(text: str, service: Service) -> int:
    return _bounded(text, "answer_number", service)


def validate_min(text: str, service: Service) -> int:
    return _bounded(text, "min", service)


def validate_max(text: str, service: Service, *, minimum: int | None = None) -> int:
    """Within the service's bounds and not below the ``min`` already answered."""
    value = _bounded(text, "max", service)
    if minimum is not None and value < minimum:
        raise FormError("max_below_min", min=minimum)
    return value


def validate_posts(text: str, service: Service) -> int:
    return _bounded(text, "posts", service)


def validate_old_posts(text: str, service: Service) -> int:
    return _bounded(text, "old_posts", service)


def validate_delay(text: str, service: Service) -> int:
    """Minutes, one of ``DELAY_CHOICES``."""
    value = _required(text)
    if not (value.isascii() and value.isdigit() and int(value) in DELAY_CHOICES):
        raise FormError("delay_invalid", choices=", ".join(map(str, DELAY_CHOICES)))
    return int(value)


def validate_expiry(text: str, service: Service, *, today: date | None = None) -> str:
    """A date d/m/Y (or d-m-Y, d.m.Y, or ISO Y-m-d), today or later → ``"dd/mm/YYYY"``."""
    written = _required(text)
    match = _DATE.fullmatch(written)
    iso = _ISO_DATE.fullmatch(written)
    if match is not None:
        day, _, month, year = match.groups()
    elif iso is not None:
        year, month, day = iso.groups()
    else:
        raise FormError("date_invalid")
    try:
        expiry = date(int(year), int(month), int(day))
    except ValueError:
        raise FormError("date_invalid") from None
    if expiry < (today or date.today()):
        raise FormError("date_in_past")
    return expiry.strftime(EXPIRY_FORMAT)


def _list(text: str, field: str, service: Service) -> list[str]:
    """Non-blank lines, stripped, counted against the field's bounds."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise FormError("empty")
    low, high = _line_bounds(field, service)
    if len(lines) > high:
        raise FormError("too_many_lines", max=high, count=len(lines))
    if len(lines) < low:
        raise FormError("too_few_lines", min=low, count=len(lines))
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE_LENGTH:
            raise FormError("line_too_long", line=number, max=MAX_LINE_LENGTH)
    return lines


def _username(value: str, line: int | None = None) -> str:
    name = value.removeprefix("@")
    if not _USERNAME.fullmatch(name):
        raise FormError("username_invalid", value=value[:MAX_USERNAME_LENGTH], line=line)
    return name


def _hashtag(value: str, line: int | None = None) -> str:
    tag = value.removeprefix("#")
    if not _HASHTAG.fullmatch(tag):
        raise FormError("hashtag_invalid", value=value[:MAX_USERNAME_LENGTH], line=line)
    return tag


def validate_comments(text: str, service: Service) -> list[str]:
    return _list(text, "comments", service)


def validate_keywords(text: str, service: Service) -> list[str]:
    return _list(text, "keywords", service)


def validate_groups(text: str, service: Service) -> list[str]:
    return _list(text, "groups", service)


def validate_usernames(text: str, service: Service) -> list[str]:
    """One username per line; a leading @ is dropped."""
    lines = _list(text, "usernames", service)
    return [_username(line, number) for number, line in enumerate(lines, start=1)]


def validate_hashtags(text: str, service: Service) -> list[str]:
    """One hashtag per line, with or without #; sent without it."""
    lines = _list(text, "hashtags", service)
    return [_hashtag(line, number) for number, line in enumerate(lines, start=1)]


def validate_username(text: str, service: Service) -> str:
    return _username(_required(text))


def validate_hashtag(text: str, service: Service) -> str:
    return _hashtag(_required(text))


_VALIDATORS: Final[Mapping[str, Callable[[str, Service], object]]] = {
    "link": validate_link,
    "quantity": validate_quantity,
    "dripfeed": validate_dripfeed,
    "runs": validate_runs,
    "interval": validate_interval,
    "comments": validate_comments,
    "usernames": validate_usernames,
    "hashtags": validate_hashtags,
    "hashtag": validate_hashtag,
    "username": validate_username,
    "media": validate_media,
    "answer_number": validate_answer_number,
    "groups": validate_groups,
    "keywords": validate_keywords,
    "min": validate_min,
    "posts": validate_posts,
    "old_posts": validate_old_posts,
    "delay": validate_delay,
    "expiry": validate_expiry,
}


def validate_field(name: str, text: str, service: Service, answers: Answers) -> object:
    """Check the answer to step ``name``, given the earlier answers; the value to store."""
    try:
        if name == "max":
            return validate_max(text, service, minimum=_answer_int(answers, "min"))
        if name not in _VALIDATORS:
            raise ValueError(f"no such form field: {name!r}")
        return _VALIDATORS[name](text, service)
    except FormError as error:
        error.field = name
        raise


# --- reading a complete form ----------------------------------------------------------------


def _answer_int(answers: Answers, name: str) -> int | None:
    value = answers.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"answer {name!r} is not a whole number: {value!r}")
    return value


def _required_int(answers: Answers, name: str) -> int:
    value = _answer_int(answers, name)
    if value is None:
        raise ValueError(f"the form has no answer {name!r}")
    return value


def _chosen_runs(answers: Answers) -> int | None:
    return _required_int(answers, "runs") if answers.get("dripfeed") is True else None


def order_quantity(service: Service, answers: Answers) -> int | None:
    """The quantity ordered: the lines of a list type, the typed one otherwise; None for a
    package or a subscription (they have none)."""
    if quantity_source(service) is QuantitySource.ABSENT:
        return None
    if (field := counted_field(service)) is not None:
        lines = answers.get(field)
        if not isinstance(lines, Sequence) or isinstance(lines, str):
            raise ValueError(f"the form has no list answer {field!r}")
        return len(lines)
    return _required_int(answers, "quantity")


def order_figures(service: Service, answers: Answers) -> OrderFigures:
    """The numbers of a complete form that its price depends on."""
    return OrderFigures(
        quantity=order_quantity(service, answers),
        runs=_chosen_runs(answers),
        max=_answer_int(answers, "max"),
        posts=_answer_int(answers, "posts"),
        old_posts=_answer_int(answers, "old_posts"),
    )


def order_price(service: Service, answers: Answers) -> Decimal:
    """Exact price of a complete form, by the one rule of ``bot.services.order_price``."""
    return services.order_price(service, order_figures(service, answers))


def price_basis(service: Service, answers: Answers) -> PriceBasis:
    """How to read ``order_price``: see ``bot.services.price_basis``."""
    return services.price_basis(service, _answer_int(answers, "posts"))


def add_arguments(service: Service, answers: Answers) -> dict[str, object]:
    """Keyword arguments of ``PanelClient.add`` for this service type; lists joined by newlines.

    Skipped optional steps and declined drip-feed details are left out.
    """
    arguments: dict[str, object] = {}
    for field in steps_for(service):
        if field.name == "dripfeed" or not field.applies(answers):
            continue
        value = answers.get(field.name)
        if value is None:
            if field.optional:
                continue
            raise ValueError(f"the form has no answer {field.name!r}")
        if isinstance(value, (list, tuple)):
            value = "\n".join(str(item) for item in value)
        arguments[field.name] = value
    return arguments


def answers_again(service: Service, arguments: Mapping[str, object]) -> dict[str, object]:
    """The answers of an earlier order (its `add` arguments) that still hold for the service as
    the panel offers it now: each is validated again, and one that no longer passes (a new
    minimum, say) is left out, so the form asks it again. Order again starts from these."""
    answers: dict[str, object] = {}
    for field in steps_for(service):
        if not field.applies(answers):
            continue
        if field.name == "dripfeed":
            answers["dripfeed"] = True if "runs" in arguments else None
            continue
        value = arguments.get(field.name)
        if value is None:
            if field.optional:
                answers[field.name] = None
            continue
        try:
            answers[field.name] = validate_field(field.name, str(value), service, answers)
        except FormError:
            continue
    return answers
