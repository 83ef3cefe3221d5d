"""Wiring only: settings → store, clients and services → the Bolt app with its listeners."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_sdk.web.async_client import AsyncWebClient

from bot.admission import Policy
from bot.config import Settings, hidden_from_libraries
from bot.context import FileReader
from bot.conversation import Conversations, Identity
from bot.core import fast_json
from bot.core.access import Access
from bot.core.personas import Persona
from bot.core.quotas import Limits
from bot.http import acknowledge_failures
from bot.listeners import register_listeners
from bot.metrics import Metrics
from bot.mistral import MistralClient, Timeouts
from bot.personas import Personas, load_catalog
from bot.slack.api import SlackApi
from bot.slack.pacer import SharedCalls
from bot.slack.writers import Writers
from bot.storage import Store, open_store
from bot.takeover import Takeover
from bot.tokens import TokenCounter
from bot.users import UserDirectory

log = logging.getLogger(__name__)


@dataclass
class Bot:
    app: AsyncApp
    conversations: Conversations
    store: Store
    model: MistralClient
    session: aiohttp.ClientSession
    takeover: Takeover
    metrics: Metrics

    async def close(self) -> None:
        await self.model.aclose()
        await self.session.close()
        await self.store.close()


class KnownBot(AsyncAuthorize):
    """The workspace's bot, as start-up's `auth.test` found it, for every request: Bolt asks Slack no more."""

    def __init__(self, identity: AuthorizeResult) -> None:
        self.identity = identity

    async def __call__(self, **_: Any) -> AuthorizeResult:
        return self.identity


def shared_budget(store: Store) -> SharedCalls | None:
    """PostgreSQL: the replicas on the database share each workspace's Slack budget. SQLite: one process, none."""
    if not store.shared:
        return None
    # Imported here, as open_store does: a single process on SQLite never loads the PostgreSQL driver.
    from bot.storage.postgres import PostgresStore
    from bot.storage.shared_budget import SharedBudget

    assert isinstance(store, PostgresStore)
    return SharedBudget(store.pool, replica=store.owner)


async def create_bot(settings: Settings, identity: AuthorizeResult) -> Bot:
    catalog = load_catalog(settings.personas_file)  # a bad file stops start-up with a clear line
    store = await open_store(settings)  # SQLite or PostgreSQL, as DATABASE_URL says; StoreError if unusable
    # One session for every Web API call: slack_sdk opens a new one per call otherwise, and with it a new
    # connection, which costs more CPU than the rest of an answer's work.
    session = aiohttp.ClientSession(json_serialize=fast_json.dumps)
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, session=session)
    metrics = Metrics()  # this bot's own registry: several bots in one process (tests) stay apart
    out = SlackApi(client, shared=shared_budget(store), metrics=metrics)
    model = MistralClient(
        base_url=settings.mistral_base_url,
        api_key=settings.mistral_api_key,
        timeouts=Timeouts(
            connect=settings.connect_timeout,
            idle=settings.idle_timeout,
            total=settings.total_timeout,
            retry_budget=settings.retry_budget,
        ),
        metrics=metrics,
    )
    tokens = TokenCounter()  # Tekken loads on the first prompt that needs it, not at start
    conversations = Conversations(
        store=store,
        model=model,
        out=out,
        writers=Writers(out, mode=settings.slack_streaming),
        personas=Personas(
            store,
            catalog,
            default=Persona(system_prompt=settings.system_prompt),
            defaults=settings.model,
            admins=settings.admins,
        ),
        tokens=tokens,
        users=UserDirectory(out),
        context_tokens=settings.context_tokens,
        total_timeout=settings.total_timeout,
        files=FileReader(
            session,
            settings.slack_bot_token,
            settings.slack_api_url,
            max_file_mb=settings.max_file_mb,
            # While REDACT is set, PDFs go as their text: a document's bytes could not be redacted.
            documents=settings.documents and not settings.redact.active,
        ),
        policy=Policy(
            access=Access(settings.allowed_channels, settings.allowed_users),
            limits=Limits(settings.user_daily_tokens, settings.workspace_monthly_budget),
            prices=settings.prices,
            admins=settings.admins,
        ),
        redact=settings.redact,
        metrics=metrics,
    )
    # Everything Bolt needs is given here; it would read tokens and OAuth settings from the environment too.
    with hidden_from_libraries():
        app = AsyncApp(
            # Bolt's client has no token of its own: each request's client gets the bot's from `authorize`.
            client=AsyncWebClient(base_url=settings.slack_api_url, session=session),
            authorize=KnownBot(identity),
            # Listeners only claim and queue work (milliseconds), so Slack's acknowledgement is sent after the
            # message is safely stored: an ack never stands for a message the bot could still lose.
            process_before_response=True,
            signing_secret=settings.slack_signing_secret or "",
            # Socket Mode traffic is authenticated by the app token; HTTP requests must be signed.
            request_verification_enabled=not settings.socket_mode,
            # A payload no listener takes goes to `acknowledge_failures` too, instead of a 404 Slack would retry.
            raise_error_for_unhandled_request=True,
        )
    app.error(acknowledge_failures)
    register_listeners(app, conversations)
    takeover = Takeover(
        conversations, Identity(bot_user_id=identity.bot_user_id or ""), resume_within=settings.resume_within
    )
    return Bot(app, conversations, store, model, session, takeover, metrics)
