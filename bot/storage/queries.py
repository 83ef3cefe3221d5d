"""The SQL both backends run word for word, and the rows it returns turned into `bot.storage.base` values.

Written with SQLite's `?` placeholders; the PostgreSQL store turns them into `%s` (`bot.storage.postgres`).
Only SQL that both databases read the same way belongs here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.core.params import ModelParams
from bot.storage.base import (
    UNFINISHED,
    AnswerRef,
    Conversation,
    NewMessage,
    Persona,
    Status,
    StoredMessage,
    ThreadKey,
    UsageBy,
    UsageRecord,
    UsageRow,
)

Row = Sequence[Any]

# Statuses whose text belongs in the model's history.
IN_HISTORY = (Status.COMPLETE, Status.PARTIAL)

# One thread's conversation, by its unique key.
CONVERSATION_QUERY = (
    "SELECT id, system_prompt, persona, params FROM conversations "
    "WHERE team_id = ? AND channel_id = ? AND thread_ts = ?"
)

# Claiming a turn (one transaction): the thread's conversation if new, the question, and its empty answer,
# leased to the process that claims it. Each backend runs these as they are (PostgreSQL adds RETURNING id).
INSERT_CONVERSATION = (
    "INSERT INTO conversations (team_id, channel_id, thread_ts, system_prompt, persona, params, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
INSERT_QUESTION = (
    "INSERT INTO messages (conversation_id, role, text, slack_user, slack_ts, status, created_at, updated_at, files) "
    "VALUES (?, 'user', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
INSERT_ANSWER = (
    "INSERT INTO messages (conversation_id, role, text, reply_to, status, created_at, updated_at, lease_owner, "
    "lease_until) VALUES (?, 'assistant', '', ?, ?, ?, ?, ?, ?)"
)
# An earlier message of a thread the bot joins late (already stored ones are skipped).
INSERT_CONTEXT = (
    "INSERT INTO messages (conversation_id, role, text, slack_user, slack_ts, status, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def conversation_row(key: ThreadKey, persona: Persona, now: float) -> tuple[object, ...]:
    """INSERT_CONVERSATION's arguments."""
    name, params = persona.name, persona.params.to_json()
    return (key.team_id, key.channel_id, key.thread_ts, persona.system_prompt, name, params, now)


def question_row(conversation_id: int, message: NewMessage, now: float) -> tuple[object, ...]:
    """INSERT_QUESTION's arguments."""
    text, user, ts, files = message.text, message.slack_user, message.slack_ts, files_json(message.files)
    return (conversation_id, text, user, ts, Status.COMPLETE, now, now, files)


def answer_row(
    conversation_id: int, question_id: int, owner: str, lease_until: float, now: float
) -> tuple[object, ...]:
    """INSERT_ANSWER's arguments."""
    return (conversation_id, question_id, Status.PENDING, now, now, owner, lease_until)


def context_row(conversation_id: int, message: NewMessage, now: float) -> tuple[object, ...]:
    """INSERT_CONTEXT's arguments."""
    return (
        conversation_id,
        message.role,
        message.text,
        message.slack_user,
        message.slack_ts,
        Status.COMPLETE,
        now,
        now,
    )


# A thread's turns: served by the messages_by_conversation index, the answers' questions by primary key.
# An answer sits right after the message it replies to, wherever its own Slack ts falls (`position`); a
# comparison with NULL is never true, so rows without a position are left out.
HISTORY_QUERY = f"""
    SELECT m.id, m.role, m.text, m.slack_user, m.slack_ts, m.status, m.tokens, m.files,
           COALESCE(q.slack_ts, m.slack_ts) AS position
    FROM messages m LEFT JOIN messages q ON q.id = m.reply_to
    WHERE m.conversation_id = ? AND COALESCE(q.slack_ts, m.slack_ts) <= ?
      AND m.status IN ({",".join("?" * len(IN_HISTORY))}) AND (m.text != '' OR m.files != '[]')
    ORDER BY position, m.id
"""

# A question `q` that is not the last of its thread: a person (not a deleted message) wrote after it.
# Served by messages_slack_ts (a comparison on slack_ts implies the index's NOT NULL).
_LATER_QUESTION = f"""
    SELECT 1 FROM messages l
    WHERE l.conversation_id = q.conversation_id AND l.slack_ts > q.slack_ts
      AND l.role = 'user' AND l.status != '{Status.DELETED}'
"""

# An answer with its question and thread, all by primary key.
ANSWER_REF_QUERY = f"""
    SELECT a.id, a.status, a.text, a.slack_parts, q.id, q.slack_ts, q.slack_user,
           NOT EXISTS ({_LATER_QUESTION}) AS latest,
           c.id, c.team_id, c.channel_id, c.thread_ts, c.system_prompt, c.persona, c.params, q.created_at
    FROM messages a
    JOIN messages q ON q.id = a.reply_to
    JOIN conversations c ON c.id = a.conversation_id
    WHERE a.id = ? AND a.role = 'assistant'
"""

# Re-run an answer in place: only the latest of its thread, not while it is being written, and not once its
# question was deleted. One statement, so two clicks at once cannot both pass the checks.
RESTART_QUERY = f"""
    UPDATE messages SET text = '', status = ?, finish_reason = NULL, prompt_tokens = NULL,
           completion_tokens = NULL, total_tokens = NULL, tokens = NULL, updated_at = ?,
           lease_owner = ?, lease_until = ?
    WHERE id = ? AND role = 'assistant' AND status NOT IN ({",".join("?" * len(UNFINISHED))})
      AND EXISTS (
        SELECT 1 FROM messages q
        WHERE q.id = messages.reply_to AND q.status != '{Status.DELETED}' AND NOT EXISTS ({_LATER_QUESTION})
      )
"""

_UNFINISHED = f"status IN ({','.join('?' * len(UNFINISHED))})"

# An answer to an earlier question of the thread, still being written: a turn waits for it (served by
# messages_by_conversation, the questions by primary key).
EARLIER_UNFINISHED_QUERY = f"""
    SELECT 1 FROM messages a JOIN messages q ON q.id = a.reply_to
    WHERE a.conversation_id = ? AND a.role = 'assistant' AND a.{_UNFINISHED} AND q.slack_ts < ?
    LIMIT 1
"""

# Leases this process holds on answers it is still writing (served by messages_status).
RENEW_QUERY = f"""
    UPDATE messages SET lease_until = ?
    WHERE lease_owner = ? AND {_UNFINISHED} AND id IN ({{ids}})
    RETURNING id
"""

RELEASE_QUERY = "UPDATE messages SET lease_until = 0 WHERE lease_owner = ? AND id IN ({ids})"

# Unfinished answers whose lease ran out, or that never had one.
LAPSED = f"role = 'assistant' AND {_UNFINISHED} AND (lease_until IS NULL OR lease_until < ?)"

UNFINISHED_QUERY = f"""
    SELECT m.id, c.team_id, c.channel_id, c.thread_ts, m.text, m.slack_parts
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE m.role = 'assistant' AND m.status IN ({",".join("?" * len(UNFINISHED))}) ORDER BY m.id
"""

# Ratings per channel and persona name; from a workspace's conversations down to their answers' ratings.
FEEDBACK_COUNTS_QUERY = """
    SELECT c.channel_id, c.persona,
           SUM(CASE WHEN f.value = 'good' THEN 1 ELSE 0 END),
           SUM(CASE WHEN f.value = 'bad' THEN 1 ELSE 0 END)
    FROM conversations c
    JOIN messages m ON m.conversation_id = c.id
    JOIN feedback f ON f.answer_id = m.id
    WHERE c.team_id = ?
    GROUP BY c.channel_id, c.persona
"""

# A thread's last activity: one step down messages_activity.
_LAST_ACTIVITY = "COALESCE((SELECT MAX(m.updated_at) FROM messages m WHERE m.conversation_id = c.id), c.created_at)"

# The threads the person wrote in (from messages_by_user, not from every thread of the workspace), each with
# its first question (the first entry of messages_slack_ts).
RECENT_CONVERSATIONS_QUERY = f"""
    SELECT c.channel_id, c.thread_ts,
           (SELECT f.text FROM messages f
            WHERE f.conversation_id = c.id AND f.slack_ts IS NOT NULL AND f.role = 'user'
              AND f.status != '{Status.DELETED}'
            ORDER BY f.slack_ts LIMIT 1) AS first_question,
           {_LAST_ACTIVITY} AS last_activity
    FROM (
        SELECT DISTINCT w.conversation_id FROM messages w
        WHERE w.slack_user = ? AND w.role = 'user' AND w.status != '{Status.DELETED}'
    ) AS wrote
    JOIN conversations c ON c.id = wrote.conversation_id
    WHERE c.team_id = ?
    ORDER BY last_activity DESC, c.id DESC
    LIMIT ?
"""

# Channels with threads or a stored persona; a persona set counts as activity in its channel.
CHANNELS_IN_USE_QUERY = f"""
    SELECT u.channel_id, u.last_activity, p.system_prompt, p.params, p.persona
    FROM (
        SELECT channel_id, MAX(seen_at) AS last_activity FROM (
            SELECT c.channel_id, {_LAST_ACTIVITY} AS seen_at FROM conversations c WHERE c.team_id = ?
            UNION ALL
            SELECT channel_id, updated_at FROM channel_personas WHERE team_id = ?
        ) AS activity
        GROUP BY channel_id
        ORDER BY last_activity DESC, channel_id
        LIMIT ?
    ) AS u
    LEFT JOIN channel_personas p ON p.team_id = ? AND p.channel_id = u.channel_id
    ORDER BY u.last_activity DESC, u.channel_id
"""


# usage and notices ----------------------------------------------------------------------------------------

INSERT_USAGE = (
    "INSERT INTO usage (team_id, channel_id, user_id, answer_id, model, persona, prompt_tokens, completion_tokens, "
    "cached_tokens, cost, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# The column each grouping sums by: a caller's `by` only picks one of these, never reaches the SQL itself.
USAGE_COLUMNS: dict[str, str] = {"user": "user_id", "channel": "channel_id", "model": "model", "persona": "persona"}

_USAGE_FIGURES = (
    "COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
    "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cost), 0)"
)

# A notice is sent by the one process whose insert lands.
CLAIM_NOTICE = "INSERT INTO notices (team_id, kind, period, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"


def usage_query(
    by: UsageBy | None,
    *,
    since: float,
    team_id: str | None,
    user_id: str | None,
    channel_id: str | None,
    limit: int | None = None,
    bytes_order: str = "",
) -> tuple[str, tuple[object, ...]]:
    """The SQL and arguments of a usage look-up: summed per `by` (None: one total) over the rows the ids select.

    Served by usage_by_user when a person is named in a workspace, else by usage_by_team for a workspace.
    `bytes_order` makes keys sort byte by byte where the database's own collation would not.
    """
    where = ["at >= ?"]
    args: list[object] = [since]
    for column, value in (("team_id", team_id), ("user_id", user_id), ("channel_id", channel_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if by is None:
        return f"SELECT NULL, {_USAGE_FIGURES} FROM usage WHERE {' AND '.join(where)}", tuple(args)
    column = USAGE_COLUMNS[by]
    sql = (
        f"SELECT {column}, {_USAGE_FIGURES} FROM usage WHERE {' AND '.join(where)} GROUP BY {column} "
        f"ORDER BY SUM(cost) DESC, SUM(prompt_tokens) + SUM(completion_tokens) DESC, "
        f"{column} IS NULL, {column}{bytes_order}"
    )
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return sql, tuple(args)


def usage_record_row(r: UsageRecord) -> tuple[object, ...]:
    """INSERT_USAGE's arguments."""
    return (
        r.team_id,
        r.channel_id,
        r.user_id,
        r.answer_id,
        r.model,
        r.persona,
        r.prompt_tokens,
        r.completion_tokens,
        r.cached_tokens,
        r.cost,
        r.at,
    )


def usage_row(r: Row) -> UsageRow:
    """A row of a usage query (a total of nothing sums to integer zeros, whatever the column)."""
    return UsageRow(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), float(r[5]))


# retention and data requests ------------------------------------------------------------------------------
# Deleting a message needs its feedback gone first, and the answers that reply to it (both foreign keys).

# A message retention may delete: last changed before the cutoff and not an answer being written. Spelled as
# messages_retention's own condition, word for word, so both databases read old rows through that index.
_UNFINISHED_LIST = ", ".join(f"'{s}'" for s in UNFINISHED)
_OLD = f"updated_at < ? AND status NOT IN ({_UNFINISHED_LIST})"

RETENTION_FEEDBACK = (
    f"DELETE FROM feedback WHERE answer_id IN (SELECT id FROM messages WHERE {_OLD} AND role = 'assistant')"
)
# Old answers go; an old question goes unless an answer to it stays (newer, or still being written): that
# answer needs its question (the foreign key, the history's order, taking it over). Arguments: cutoff twice.
RETENTION_MESSAGES = f"""
    DELETE FROM messages WHERE {_OLD} AND (
        role = 'assistant' OR NOT EXISTS (
            SELECT 1 FROM messages a
            WHERE a.reply_to = messages.id AND (a.updated_at >= ? OR a.status IN ({_UNFINISHED_LIST}))
        )
    )
"""

# A person's questions (messages_by_user), optionally in one workspace (`TEAM_OF_MESSAGE`), and the answers
# to them (messages_reply_to). `{lock}` locks the rows where the database can (PostgreSQL: FOR UPDATE), so an
# answer cannot be rated or re-run between the statements that delete it.
PERSONS_QUESTIONS = "SELECT id FROM messages WHERE slack_user = ? AND role = 'user'{team}{lock}"
TEAM_OF_MESSAGE = " AND EXISTS (SELECT 1 FROM conversations c WHERE c.id = messages.conversation_id AND c.team_id = ?)"
ANSWERS_TO = "SELECT id FROM messages WHERE reply_to IN ({ids}){lock}"
# The ratings the person gave (feedback_by_user), optionally on answers in one workspace.
PERSONS_FEEDBACK = "DELETE FROM feedback WHERE user_id = ?{team}"
TEAM_OF_FEEDBACK = (
    " AND EXISTS (SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id "
    "WHERE m.id = feedback.answer_id AND c.team_id = ?)"
)
# The workspace filter of a table with its own team_id.
IN_TEAM = " AND team_id = ?"
# Usage keeps its figures; only the name goes (usage_by_user when the workspace is named).
ANONYMISE_USAGE = "UPDATE usage SET user_id = NULL WHERE user_id = ?{team}"

# A channel's conversations, in one workspace (the conversations' unique key) or in any.
CHANNELS_CONVERSATIONS = "SELECT id FROM conversations WHERE channel_id = ?{team}{lock}"

FEEDBACK_ON = "DELETE FROM feedback WHERE answer_id IN ({ids})"
FEEDBACK_IN_CONVERSATIONS = (
    "DELETE FROM feedback WHERE answer_id IN (SELECT id FROM messages WHERE conversation_id IN ({ids}))"
)
DELETE_MESSAGES = "DELETE FROM messages WHERE id IN ({ids})"
# Questions and answers together: the foreign key between them is checked once the statement is done.
DELETE_CONVERSATIONS_MESSAGES = "DELETE FROM messages WHERE conversation_id IN ({ids})"
DELETE_CONVERSATIONS = "DELETE FROM conversations WHERE id IN ({ids})"
DELETE_CHANNEL_PERSONA = "DELETE FROM channel_personas WHERE channel_id = ?{team}"


# rows → values -------------------------------------------------------------------------------------------


def persona(system_prompt: str, params: str, name: str | None) -> Persona:
    return Persona(system_prompt, ModelParams.from_stored(params), name)


def conversation(conv_id: int, key: ThreadKey, system_prompt: str, name: str | None, params: str) -> Conversation:
    return Conversation(conv_id, key, persona(system_prompt, params, name))


def stored_message(r: Row) -> StoredMessage:
    """A row of HISTORY_QUERY."""
    return StoredMessage(r[0], r[1], r[2], r[3], r[4], Status(r[5]), r[6], tuple(json.loads(r[7])))


# What a stored file keeps of Slack's file object: what `bot.files` reads to fetch and classify it again.
# `read`: what was read of it when its message was first answered (how it was sent, its text).
FILE_FIELDS = (
    "id",
    "name",
    "title",
    "mimetype",
    "filetype",
    "size",
    "url_private",
    "url_private_download",
    "mode",
    "read",
)


def files_json(files: Sequence[dict[str, Any]]) -> str:
    return json.dumps([{k: f[k] for k in FILE_FIELDS if k in f} for f in files])


def answer_ref(r: Row) -> AnswerRef:
    """A row of ANSWER_REF_QUERY."""
    return AnswerRef(
        answer_id=r[0],
        conversation=conversation(r[8], ThreadKey(r[9], r[10], r[11]), r[12], r[13], r[14]),
        user_message_id=r[4],
        user_ts=r[5],
        asker=r[6],
        status=Status(r[1]),
        text=r[2],
        slack_parts=json.loads(r[3]),
        latest=bool(r[7]),
        asked_at=float(r[15]),
    )
