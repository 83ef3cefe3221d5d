"""`python -m bot`: the command line. `run`, the default, reads settings (the environment over `.env` in the
working directory) and runs the bot. A bad setting, or a token Slack refuses, stops start-up with one clear line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bot.config import ConfigError, environment, load_settings
from bot.core.personas import PersonaError
from bot.logs import configure_logging
from bot.runtime import StartupError, run
from bot.storage import StoreError

DESCRIPTION = "A Slack assistant that answers with Mistral's chat models."
EPILOG = (
    "Settings come from the environment, or from .env in the working directory (the environment wins); "
    "see README.md. Without a command, `run` is assumed."
)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m bot", description=DESCRIPTION, epilog=EPILOG)
    cli.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="read settings from this file instead of .env in the working directory",
    )
    commands = cli.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    commands.add_parser("run", help="connect to Slack and answer (the default)", description="Connect and answer.")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {None: run_bot, "run": run_bot}
    return commands[args.command](args)


def run_bot(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(environment(args.env_file))
    except ConfigError as exc:
        return _refuse(str(exc))
    configure_logging(settings)
    try:
        run(settings)
    except PersonaError as exc:
        return _refuse(f"PERSONAS_FILE: {exc}")
    except (StartupError, StoreError) as exc:
        return _refuse(str(exc))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return 130
    logging.getLogger("bot").info("stopped")
    return 0


def _refuse(problem: str) -> int:
    print(f"configuration error: {problem}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
