"""What `python -m bot` does: parse the command, load settings, run."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.config import ConfigError, load_settings
from bot.logs import configure_logging, secrets_of

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="SMM panel Telegram bot")
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "migrate", "playground"],
        help="run the bot (default), apply database migrations, or start the offline playground",
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "playground":
        from playground.run import run_playground

        return run_playground()
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, secrets_of(settings))
    if args.command == "migrate":
        from migrations import upgrade_database_sync

        upgrade_database_sync(settings.database_url)
        print("Database is up to date.")
        return 0
    from bot.runner import run_bot

    asyncio.run(run_bot(settings))
    return 0
