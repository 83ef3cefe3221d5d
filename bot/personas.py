"""Which persona a channel uses: `/persona` choices in the store, else `PERSONAS_FILE`, else the default."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bot.core.params import ModelParams
from bot.core.personas import Catalog, Persona, PersonaError, SuggestedPrompt, parse_catalog
from bot.storage import Store


def load_catalog(path: Path) -> Catalog:
    """Read `PERSONAS_FILE`; a missing file is an empty catalog, an unreadable one a `PersonaError`."""
    if not path.exists():
        return Catalog()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PersonaError(f"cannot read {path}: {exc}") from None
    return parse_catalog(data)


class Personas:
    def __init__(
        self, store: Store, catalog: Catalog, *, default: Persona, defaults: ModelParams, admins: frozenset[str]
    ) -> None:
        self._store = store
        self.catalog = catalog
        self.default = default
        self._defaults = defaults
        self._admins = admins

    def effective(self, persona: Persona) -> ModelParams:
        """The settings a request uses: the persona's, over the deployment's defaults."""
        return persona.params.over(self._defaults)

    async def current(self, team_id: str, channel_id: str) -> Persona:
        return self.resolve(channel_id, await self._store.get_channel_persona(team_id, channel_id))

    def resolve(self, channel_id: str, chosen: Persona | None) -> Persona:
        """The persona in force given the channel's stored choice (None: no `/persona` choice)."""
        if chosen is not None:
            return chosen
        name = self.catalog.channels.get(channel_id)
        return self.catalog.named[name] if name else self.default

    def prompts_for(self, persona: Persona) -> tuple[SuggestedPrompt, ...]:
        """The Messages tab's suggestions for a persona, by its name in `PERSONAS_FILE` (custom: the defaults)."""
        return self.catalog.prompts_for(persona.name)

    def may_change(self, user_id: str) -> bool:
        return not self._admins or user_id in self._admins

    async def set_prompt(self, team_id: str, channel_id: str, prompt: str, user_id: str) -> Persona:
        # A custom prompt keeps the model settings of the persona it replaces.
        base = await self.current(team_id, channel_id)
        persona = Persona(system_prompt=prompt, params=base.params, name=None)
        await self._store.set_channel_persona(team_id, channel_id, persona, user_id)
        return persona

    async def use(self, team_id: str, channel_id: str, name: str, user_id: str) -> Persona:
        persona = self.catalog.named.get(name)
        if persona is None:
            known = ", ".join(f"`{n}`" for n in sorted(self.catalog.named)) or "none are defined"
            raise PersonaError(f"There is no persona called `{name}`. Known personas: {known}.")
        await self._store.set_channel_persona(team_id, channel_id, persona, user_id)
        return persona

    async def reset(self, team_id: str, channel_id: str, user_id: str) -> Persona:
        await self._store.set_channel_persona(team_id, channel_id, None, user_id)
        return await self.current(team_id, channel_id)
