"""What `python -m bot` does: parse the command, load settings, run."""

from __future__ import annotations

import argparse
import logging
import sys

from bot import loop
from bot.config import ConfigError, load_settings
from bot.logs import configure_logging, secrets_of

EXIT_CONFIG = 2  # as bot.runner.EXIT_CONFIG: a setting is missing or wrong


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="SMM panel Telegram bot")
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "migrate", "playground"],
        help="run the bot (default), apply database migrations, or start the offline playground",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log at DEBUG and show the traceback of a start-up failure (as LOG_LEVEL=DEBUG)",
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
    debug = args.debug or settings.log_level.strip().upper() == "DEBUG"
    redaction = configure_logging("DEBUG" if debug else settings.log_level, secrets_of(settings))
    if args.command == "migrate":
        from migrations import upgrade_database_sync

        upgrade_database_sync(settings.database_url)
        print("Database is up to date.")
        return 0
    from bot.runner import StartupError, run_bot

    try:
        loop.run(run_bot(settings))
    except StartupError as error:
        if debug:  # the whole story, through the log's redaction
            logging.getLogger(__name__).error("%s", error, exc_info=error)
        else:
            print(redaction.redact(str(error)), file=sys.stderr)
        return error.exit_code
    return 0
