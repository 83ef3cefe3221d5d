"""`python -m bot`: the command line. `run`, the default, reads settings (the environment over `.env` in the
working directory) and runs the bot. A bad setting, or a token Slack refuses, stops start-up with one clear line.
`doctor` checks a deployment; `usage` and `forget` are for the admins who run it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bot.admin_cli import run_forget, run_usage
from bot.config import ConfigError, Settings, environment, load_settings
from bot.core.personas import PersonaError
from bot.doctor import run_doctor
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
    commands.add_parser(
        "doctor",
        help="check the settings, tokens, scopes, models and database; exit 0 only when all is well",
        description="Check a deployment from its settings, one line per check. Changes nothing.",
    )
    usage = commands.add_parser(
        "usage",
        help="tokens and cost per user, channel, model or persona",
        description="Usage and cost, across workspaces.",
    )
    usage.add_argument("--since", default="30d", help="how far back: 30d, 12h, 90m, 2w (default 30d)")
    usage.add_argument("--by", choices=("user", "channel", "model", "persona"), default="user")
    usage.add_argument("--format", dest="fmt", choices=("table", "csv"), default="table")
    forget = commands.add_parser(
        "forget",
        help="delete a person's or a channel's stored messages (a data request)",
        description="Delete the stored messages of one person or one channel, and say how many.",
    )
    forget.add_argument("--user", metavar="U…", help="a Slack user ID")
    forget.add_argument("--channel", metavar="C…", help="a Slack channel ID")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {None: run_bot, "run": run_bot, "doctor": doctor, "usage": usage, "forget": forget}
    return commands[args.command](args)


def doctor(args: argparse.Namespace) -> int:
    try:
        env = environment(args.env_file)
    except ConfigError as exc:
        return _refuse(str(exc))
    return run_doctor(env, sys.stdout)


def usage(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    return run_usage(settings, since=args.since, by=args.by, fmt=args.fmt, out=sys.stdout)


def forget(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    return run_forget(settings, user=args.user, channel=args.channel, out=sys.stdout)


def _settings(args: argparse.Namespace) -> Settings | None:
    try:
        return load_settings(environment(args.env_file))
    except ConfigError as exc:
        _refuse(str(exc))
        return None


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
