"""Service types: which one a service is, how its quantity is given, and what an order costs.

The one owner of every service-type rule; the form, the texts, ordering and the sandbox panel
ask here. A type name is compared with its whitespace collapsed and its case folded. A name the
panel does not document (such as "Followers Package") is a Default service everywhere: a link
and a typed quantity within min–max, priced per 1000.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Final, Literal

from bot.money import package_price, price_of
from bot.panel.models import Service

PriceBasis = Literal["total", "up_to", "per_post"]

# Fields of `add` whose value is a list, one item per line.
LIST_FIELDS: Final = frozenset({"comments", "usernames", "hashtags", "keywords", "groups"})


class ServiceType(StrEnum):
    """The types the API v2 documents; the values are the panel's own names."""

    DEFAULT = "Default"
    PACKAGE = "Package"
    CUSTOM_COMMENTS = "Custom Comments"
    CUSTOM_COMMENTS_PACKAGE = "Custom Comments Package"
    MENTIONS = "Mentions"
    MENTIONS_WITH_HASHTAGS = "Mentions with Hashtags"
    MENTIONS_CUSTOM_LIST = "Mentions Custom List"
    MENTIONS_HASHTAG = "Mentions Hashtag"
    MENTIONS_USER_FOLLOWERS = "Mentions User Followers"
    COMMENT_LIKES = "Comment Likes"
    MENTIONS_MEDIA_LIKERS = "Mentions Media Likers"
    POLL = "Poll"
    COMMENT_REPLIES = "Comment Replies"
    INVITES_FROM_GROUPS = "Invites from Groups"
    SEO = "SEO"
    SUBSCRIPTIONS = "Subscriptions"


class QuantitySource(Enum):
    """Where an order's quantity comes from."""

    TYPED = "typed"  # the `quantity` field
    LINES = "lines"  # the number of lines of one list field
    ABSENT = "absent"  # a package or a subscription has none


@dataclass(frozen=True, slots=True)
class _Rule:
    list_fields: tuple[str, ...] = ()
    counted: str | None = None  # the list field whose lines are the quantity
    package: bool = False  # costs its rate, whatever is ordered


_RULES: Final[Mapping[ServiceType, _Rule]] = {
    ServiceType.DEFAULT: _Rule(),
    ServiceType.PACKAGE: _Rule(package=True),
    ServiceType.CUSTOM_COMMENTS: _Rule(("comments",), counted="comments"),
    ServiceType.CUSTOM_COMMENTS_PACKAGE: _Rule(("comments",), package=True),
    ServiceType.MENTIONS: _Rule(("usernames",)),
    ServiceType.MENTIONS_WITH_HASHTAGS: _Rule(("usernames", "hashtags")),
    ServiceType.MENTIONS_CUSTOM_LIST: _Rule(("usernames",), counted="usernames"),
    ServiceType.MENTIONS_HASHTAG: _Rule(),
    ServiceType.MENTIONS_USER_FOLLOWERS: _Rule(),
    ServiceType.COMMENT_LIKES: _Rule(),
    ServiceType.MENTIONS_MEDIA_LIKERS: _Rule(),
    ServiceType.POLL: _Rule(),
    ServiceType.COMMENT_REPLIES: _Rule(("comments",), counted="comments"),
    ServiceType.INVITES_FROM_GROUPS: _Rule(("groups",)),
    ServiceType.SEO: _Rule(("keywords",)),
    ServiceType.SUBSCRIPTIONS: _Rule(),
}


def type_key(name: str) -> str:
    """A type name as compared: " Custom  Comments  PACKAGE " → "custom comments package"."""
    return " ".join(name.split()).casefold()


_BY_KEY: Final = {type_key(member.value): member for member in ServiceType}


def is_known_type(name: str) -> bool:
    """Whether the panel documents this type (after normalisation)."""
    return type_key(name) in _BY_KEY


def service_type(of: Service | str) -> ServiceType:
    """The known type of a service or type name; an unknown one is Default."""
    name = of if isinstance(of, str) else of.type
    return _BY_KEY.get(type_key(name), ServiceType.DEFAULT)


def is_package(of: Service | str) -> bool:
    """A package (Package, Custom Comments Package) costs its rate, whatever is ordered."""
    return _RULES[service_type(of)].package


def is_subscription(of: Service | str) -> bool:
    return service_type(of) is ServiceType.SUBSCRIPTIONS


def quantity_source(of: Service | str) -> QuantitySource:
    """Typed, counted from the lines of a list field (``counted_field``), or absent."""
    kind = service_type(of)
    rule = _RULES[kind]
    if rule.package or kind is ServiceType.SUBSCRIPTIONS:
        return QuantitySource.ABSENT
    return QuantitySource.LINES if rule.counted is not None else QuantitySource.TYPED


def counted_field(of: Service | str) -> str | None:
    """The list field whose number of lines is the quantity, if the quantity is counted."""
    return _RULES[service_type(of)].counted


def list_fields(of: Service | str) -> tuple[str, ...]:
    """The list fields (one item per line) that `add` takes for this type."""
    return _RULES[service_type(of)].list_fields


def is_open_ended(of: Service | str, posts: int | None) -> bool:
    """A subscription without a number of new posts (none given, or 0): it has no total."""
    return is_subscription(of) and not posts


@dataclass(frozen=True, slots=True)
class OrderFigures:
    """The numbers an order may be priced by; which ones count depends on the type."""

    quantity: int | None = None  # typed or counted; None for a package or a subscription
    runs: int | None = None  # drip-feed runs; None without drip-feed
    max: int | None = None  # subscription: the most delivered per post
    posts: int | None = None  # subscription: new posts; None or 0 is open-ended
    old_posts: int | None = None  # subscription: existing posts covered too

    @property
    def covered_posts(self) -> int | None:
        """New plus old posts of a subscription; None when open-ended."""
        if not self.posts:
            return None
        return self.posts + (self.old_posts or 0)


def order_price(service: Service, figures: OrderFigures) -> Decimal:
    """Exact price: a package's rate; rate × quantity / 1000 (× runs) otherwise.

    A subscription is charged per post, up to ``max`` each: its price is the most it can cost,
    for all its covered posts, or for each post when open-ended (see ``price_basis``).
    Raises ValueError when a figure the type is priced by is missing.
    """
    if is_package(service):
        return package_price(service.rate)
    if is_subscription(service):
        if figures.max is None:
            raise ValueError("a subscription is priced by its max per post")
        per_post = price_of(service.rate, figures.max)
        posts = figures.covered_posts
        return per_post if posts is None else per_post * posts
    if figures.quantity is None:
        raise ValueError(f"a {service.type!r} service is priced by its quantity")
    return price_of(service.rate, figures.quantity, figures.runs)


def price_basis(of: Service | str, posts: int | None) -> PriceBasis:
    """How to read ``order_price``: "total"; "up_to" (a subscription with a number of posts:
    at most that in all); "per_post" (an open-ended subscription: at most that per post)."""
    if not is_subscription(of):
        return "total"
    return "per_post" if is_open_ended(of, posts) else "up_to"
