"""Who holds a row lease: the id a process writes into the `lease_owner` columns it claims."""

from __future__ import annotations

import os
import secrets
import socket


def process_owner_id() -> str:
    """Who holds a lease: host, pid and a random part (pids repeat across containers)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
