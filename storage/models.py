"""Database tables: chats, users, orders, refills, the outbox, FSM state, a small key-value,
and the reseller ledger (entries, wallets, markups, pending Stars top-ups)."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.db import Money, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


CURRENCY_LENGTH = 16  # the panel layer accepts shorter plain tokens only


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        Decimal: Money(),
        dict[str, Any]: JSON(),
    }


class SubmissionState(enum.StrEnum):
    """Where an order is on its way to the panel: draft → (awaiting approval →) submitting →
    placed, or failed / unknown (the request may have reached the panel) / rejected / canceled."""

    DRAFT = "draft"  # summary shown, waiting for Confirm
    AWAITING_APPROVAL = "awaiting_approval"  # over a spending limit, waiting for an admin
    SUBMITTING = "submitting"  # taken by one Confirm; `add` is in flight
    PLACED = "placed"  # the panel answered with an order id
    FAILED = "failed"  # the panel said no (or it was never sent)
    UNKNOWN = "unknown"  # `add` may have reached the panel; an admin must reconcile
    REJECTED = "rejected"  # an admin refused it
    CANCELED = "canceled"  # the user dropped the draft


class Chat(Base):
    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(16), default="private")
    title: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(8))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_at: Mapped[datetime | None]
    notify: Mapped[bool] = mapped_column(Boolean, default=False)  # set by /notify_here
    next_send_at: Mapped[datetime | None]  # per-chat pacing of the outbox
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(8))  # chosen with /language
    telegram_language: Mapped[str | None] = mapped_column(String(16))
    # Stored /allow (True) or /deny (False), on top of ALLOWED_USER_IDS; None = settings decide.
    access: Mapped[bool | None] = mapped_column(Boolean)
    access_requested_at: Mapped[datetime | None]  # "Ask for access": one request a day
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Favourite(Base):
    """A service a user starred (☆ on its card): offered first when they order."""

    __tablename__ = "favourites"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_chat_created", "chat_id", "created_at"),
        Index("ix_orders_poll", "poll_active", "next_poll_at"),
        Index("ix_orders_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    panel_order_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("chats.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    # A snapshot of the service as it was offered, so later catalog changes alter nothing here.
    service_id: Mapped[int] = mapped_column(BigInteger)
    service_name: Mapped[str] = mapped_column(String(512))
    service_type: Mapped[str] = mapped_column(String(64))
    service_rate: Mapped[Decimal]
    category: Mapped[str] = mapped_column(String(255), default="")
    can_refill: Mapped[bool] = mapped_column(Boolean, default=False)
    can_cancel: Mapped[bool] = mapped_column(Boolean, default=False)
    link: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int | None] = mapped_column(BigInteger)  # the form accepts 18 digits
    runs: Mapped[int | None] = mapped_column(Integer)
    interval: Mapped[int | None] = mapped_column(Integer)
    # Type-specific fields of `add` (comments, usernames, answer_number, subscription fields…).
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    price: Mapped[Decimal]
    charge: Mapped[Decimal | None]
    # Reseller mode: what the customer pays, fixed at the summary and debited at Confirm.
    # Nothing rewrites these (the poller updates the panel's figures only).
    customer_price: Mapped[Decimal | None]
    customer_currency: Mapped[str | None] = mapped_column(String(CURRENCY_LENGTH))
    # Each move to `submitting` is one attempt; ledger references carry its number.
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(CURRENCY_LENGTH), default="USD")
    state: Mapped[str] = mapped_column(String(24), default=SubmissionState.DRAFT)
    error: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(32))  # the panel's status
    remains: Mapped[int | None] = mapped_column(BigInteger)
    start_count: Mapped[int | None] = mapped_column(BigInteger)
    # Polling: active until terminal (or the panel forgot the id); leased by one poller at a time.
    poll_active: Mapped[bool] = mapped_column(Boolean, default=False)
    panel_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    next_poll_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(BigInteger)  # admin who approved/rejected
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    placed_at: Mapped[datetime | None]

    refills: Mapped[list[Refill]] = relationship(back_populates="order", lazy="raise")


class Refill(Base):
    __tablename__ = "refills"
    __table_args__ = (Index("ix_refills_poll", "poll_active", "next_poll_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    panel_refill_id: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int] = mapped_column(Integer, ForeignKey("orders.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(32), default="Pending")
    poll_active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_poll_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    order: Mapped[Order] = relationship(back_populates="refills", lazy="raise")


class OutboxMessage(Base):
    """A message waiting to be sent; deleted only after Telegram accepted it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "not_before", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    text: Mapped[str] = mapped_column(Text)
    reply_markup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(24), default="notice")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FsmRecord(Base):
    """aiogram FSM state and data for one storage key (see storage.fsm.SqlStorage)."""

    __tablename__ = "fsm_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class KeyValue(Base):
    """Small durable facts of the bot (low-balance alert sent, cached currency…)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LedgerKind(enum.StrEnum):
    """What moved a wallet. Charges, debits and Stars refunds take money out; a late charge
    does too and alone may take a wallet below zero (the panel placed an order already
    refunded); the rest put money in."""

    TOPUP = "topup"  # a Stars payment
    CHARGE = "charge"  # an order's price, at Confirm
    REFUND = "refund"  # what an order did not deliver, or a refused attempt
    CREDIT = "credit"  # an admin's /credit (a payment taken elsewhere)
    DEBIT = "debit"  # an admin's /debit
    STARS_REFUND = "stars_refund"  # Stars given back to the payer
    LATE_CHARGE = "late_charge"  # a panel id that arrived after the attempt was refunded


class LedgerEntry(Base):
    """One movement of a wallet, never edited: a mistake is corrected by a new entry.

    `amount` is signed (negative takes money out). `reference` names the event that booked it
    (`order:7:charge:1`, `stars:<charge id>`…), so the same event books once. No foreign keys:
    the money's history must outlive whatever else is ever deleted.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_user", "user_id", "id"),
        Index("ix_ledger_entries_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(CURRENCY_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(128), unique=True)
    order_id: Mapped[int | None] = mapped_column(Integer, index=True)
    admin_id: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Wallet(Base):
    """A customer's balance: the sum of their ledger entries, kept with every booking."""

    __tablename__ = "wallets"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    balance: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(CURRENCY_LENGTH))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarkupScope(enum.StrEnum):
    """How much of the catalog a markup covers; the most specific one set wins."""

    GLOBAL = "global"  # key ""
    CATEGORY = "category"  # key: the category's name
    SERVICE = "service"  # key: the service id


class Markup(Base):
    """A markup percent set with /markup, on top of the exchange rate."""

    __tablename__ = "markups"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    percent: Mapped[Decimal]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TopupState(enum.StrEnum):
    PENDING = "pending"  # the invoice was sent; nothing paid yet
    PAID = "paid"  # at least one payment of its invoice was credited


class Topup(Base):
    """A Stars top-up a customer pressed: the amount to credit and the Stars its invoice asks.

    The invoice's payload names the row, so the pre-checkout and the payment read what was
    pressed, never what the payload claims. The money itself is in the ledger only.
    """

    __tablename__ = "topups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(CURRENCY_LENGTH))
    stars: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=TopupState.PENDING)
    return_order: Mapped[int | None] = mapped_column(Integer)  # the summary to show again
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
