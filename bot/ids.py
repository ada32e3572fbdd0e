"""The one parser of ids people type (order ids, user ids) and the one limit every id obeys."""

from __future__ import annotations

# Below 2**62: fits every integer column (SQLite and BIGINT end at 2**63) with room to spare, so a
# crafted huge number never reaches the database; real Telegram and panel ids are far smaller.
MAX_ID = 2**62


def parse_id(text: str | None) -> int | None:
    """A positive whole number written in ASCII digits ("#23501" too), else None."""
    candidate = (text or "").strip().removeprefix("#")
    # More than 19 digits is over the limit anyway: never convert an endless number.
    if not candidate.isascii() or not candidate.isdigit() or len(candidate) > 19:
        return None
    number = int(candidate)
    return number if 0 < number < MAX_ID else None
