"""`python -m bot`: load `.env`, read settings, run. A bad setting stops start-up with one clear line."""

from __future__ import annotations

import logging
import sys

from dotenv import load_dotenv

from bot.config import ConfigError, load_settings
from bot.core.personas import PersonaError
from bot.logs import configure_logging
from bot.runtime import run


def main() -> int:
    load_dotenv(override=False)  # the real environment wins over .env
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        run(settings)
    except PersonaError as exc:
        print(f"configuration error: PERSONAS_FILE: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("bot").info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
