"""The answer writer against the fake Slack, through the real slack_sdk client: every way of writing, and
every way Slack can fail it."""

from __future__ import annotations

from collections import deque

import pytest

from bot.notes import with_notes
from bot.slack.api import SlackApi, SlackCallError
from bot.slack.streams import StreamedMessage
from bot.slack.writers import AnswerWriter, Writers
from tests.conftest import until
from tests.fakes import slack as fs

CHANNEL = "C0WRITE"
THREAD = "1700000000.000100"


def writer(api: SlackApi, mode: str, *, min_interval: float = 0.05) -> AnswerWriter:
    return Writers(api, mode=mode, min_interval=min_interval).new(
        TEAM, CHANNEL, THREAD, recipient_user_id="U0ADA", answer_id=1
    )


TEAM = fs.TEAM
WORDS = [f"word{i} " for i in range(30)]


def shown(slack: fs.FakeSlack) -> str:
    """What people read in the thread: every bot message, in order."""
    return " ".join(m.text for m in slack.bot_replies(CHANNEL, THREAD))


async def write_slowly(w: AnswerWriter, words: list[str]) -> None:
    import asyncio

    await w.start()
    for word in words:
        w.append(word)
        await asyncio.sleep(0.01)
    await w.finish()


@pytest.mark.parametrize("mode", ["update", "native"])
@pytest.mark.parametrize("error", ["internal_error", "fatal_error", "request_timeout", "http_500", "http_503"])
async def test_passing_slack_failures_are_retried_and_the_answer_completes(
    slack: fs.FakeSlack, api: SlackApi, mode: str, error: str
) -> None:
    method = "chat.update" if mode == "update" else "chat.appendStream"
    slack.errors[method] = deque([error, error])  # two in a row, at any point of the answer
    w = writer(api, mode)
    await write_slowly(w, WORDS)
    assert shown(slack).split() == "".join(WORDS).split()
    await w._writers.close(grace=10)  # a stream's stop may follow the final text
    assert not any(m.streaming for m in slack.bot_replies(CHANNEL, THREAD))  # every stream was stopped
    pacer = api.pacer(TEAM)
    assert pacer.answers_in_flight == 0 and pacer.native_in_flight == 0


@pytest.mark.parametrize(
    ("mode", "method"),
    [
        ("update", "chat.postMessage"),  # the first text is the final one: its message is posted with it
        ("native", "chat.startStream"),  # or the stream's start carries it; failed, the text is posted instead
        ("native", "chat.stopStream"),  # the stop carries the end of the text when a stop slot is free
        ("native", "chat.appendStream"),  # else an append does, and the stop follows
    ],
)
async def test_the_final_text_survives_failures_at_the_very_end(
    slack: fs.FakeSlack, api: SlackApi, mode: str, method: str
) -> None:
    if method == "chat.appendStream":
        api.pacer(TEAM).budget.rate_limited("chat.stopStream", api.pacer(TEAM).now(), 0.5)  # no stop slot now
    w = writer(api, mode, min_interval=60)  # no intermediate update: only the first text and the final one
    await w.start()
    if method in ("chat.stopStream", "chat.appendStream"):
        w.append("the whole ")  # the stream's start shows the first text at once; the rest waits for the final
        await until(lambda: shown(slack) == "the whole ")
    # A failed start is not retried: that answer goes by chat.update at once.
    errors = ["internal_error"] if method == "chat.startStream" else ["internal_error", "http_503"]
    slack.errors[method] = deque(errors)
    w.append("answer" if method in ("chat.stopStream", "chat.appendStream") else "the whole answer")
    await w.finish()
    assert shown(slack) == "the whole answer"
    assert [c.error for c in slack.calls_to(method)][: len(errors)] == errors  # the fake did fail it
    await w._writers.close(grace=10)
    assert not any(m.streaming for m in slack.bot_replies(CHANNEL, THREAD))


async def test_a_stream_starts_with_its_first_text_and_never_shows_more_than_is_stored(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    import time

    saves: list[tuple[float, str]] = []  # (when, the answer's text then) for each progress save
    w = writer(api, "native")

    async def save() -> None:
        saves.append((time.monotonic(), w.raw))

    w.on_progress = save
    await write_slowly(w, WORDS)
    await w._writers.close(grace=10)
    calls = [c for c in slack.calls if c.method.endswith("Stream") and c.error is None]
    assert calls[0].method == "chat.startStream" and calls[0].args["markdown_text"]  # one call, not start + append
    seen = ""
    for call in calls:
        seen += call.args.get("markdown_text", "")
        assert any(at < call.at and raw.startswith(seen) for at, raw in saves), f"{call.method} showed {seen!r}"
    assert seen == "".join(WORDS)


def test_a_streams_start_shows_whole_words_and_nothing_that_must_be_cut_first() -> None:
    first = StreamedMessage.first_markdown
    assert first("Hello wor", False, final=False) == "Hello "  # the open word waits for the next append
    assert first("Hello wor", False, final=True) == "Hello wor"
    assert first("Hel", False, final=False) == ""  # no whole word yet: the stream starts empty
    assert first("x = 1", True, final=True) == "```\nx = 1"  # a message cut inside a code block reopens it
    assert first("word " * 2_000, False, final=True) == ""  # too long for one stream: cut first, then shown


async def test_a_native_writer_that_slack_breaks_says_so_and_frees_its_stream(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    """A failure outside the native refusals used to be lost: the store said complete, the stream never
    stopped, and the workspace's count of streams in flight never went down."""
    w = writer(api, "native")
    await w.start()
    slack.errors["chat.appendStream"] = deque(["message_not_found"])  # someone deleted the message
    w.append("some text")
    with pytest.raises(SlackCallError) as failure:
        for _ in range(200):
            import asyncio

            await asyncio.sleep(0.01)
            w.append(" more")  # the model stream stops at the first append after the failure
    assert failure.value.error == "message_not_found"
    with pytest.raises(SlackCallError):
        await w.finish()
    assert api.pacer(TEAM).native_in_flight == 0


async def test_persistent_failures_end_in_an_error_not_a_silent_success(slack: fs.FakeSlack, api: SlackApi) -> None:
    w = writer(api, "update", min_interval=60)
    await w.start()
    w.append("an answer Slack will not take")
    slack.errors["chat.postMessage"] = deque(["internal_error"] * 10)  # its first message is never posted
    with pytest.raises(SlackCallError) as failure:
        await w.finish()
    assert failure.value.transient
    assert api.pacer(TEAM).answers_in_flight == 0


@pytest.mark.parametrize("mode", ["update", "native"])
async def test_random_transient_faults_lose_and_double_nothing(slack: fs.FakeSlack, api: SlackApi, mode: str) -> None:
    slack.fault_rate = 0.3
    words = [f"w{i} " for i in range(120)]
    w = writer(api, mode)
    await write_slowly(w, words)
    assert shown(slack).split() == "".join(words).split()
    assert any(c.error in fs.TRANSIENT_FAULTS for c in slack.calls)  # the fake did fail it


async def test_a_stream_refused_mid_answer_continues_with_updates_from_the_first_unseen_character(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    import asyncio

    w = writer(api, "native")
    await w.start()
    for word in WORDS[:10]:
        w.append(word)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # the first words are streamed
    slack.errors["chat.appendStream"] = deque(["message_not_in_streaming_state"])
    for word in WORDS[10:]:
        w.append(word)
        await asyncio.sleep(0.01)
    await w.finish()
    replies = slack.bot_replies(CHANNEL, THREAD)
    assert len(replies) == 2 and replies[0].text  # the stream kept what it showed; the rest follows
    assert shown(slack).split() == "".join(WORDS).split()


async def test_queued_answers_use_no_native_capacity_until_their_turn(api: SlackApi) -> None:
    """Writers for turns still waiting on their thread's lock used to count as streams starting, so a busy
    thread could use up the workspace's native streaming."""
    writers = Writers(api, mode="auto")
    queued = [writers.new(TEAM, CHANNEL, THREAD, recipient_user_id="U0ADA", answer_id=i + 1) for i in range(40)]
    assert len(queued) == 40
    pacer = api.pacer(TEAM)
    assert pacer.native_starting == 0 and pacer.native_has_room()
    assert writers.wants_native(TEAM, CHANNEL)


async def test_a_complete_answer_does_not_wait_for_its_stream_to_be_stopped(slack: fs.FakeSlack, api: SlackApi) -> None:
    """chat.stopStream is Tier 2: under load it may be a minute away, and the answer is visible already."""
    import asyncio

    slack.limits["chat.stopStream"] = (0, 60.0)  # every stop is refused with a 429 for now
    w = writer(api, "native")
    await w.start()
    w.append("all of it")
    await asyncio.wait_for(w.finish(), 5)  # returns once the text is visible
    assert shown(slack) == "all of it"
    [start] = slack.calls_to("chat.startStream")  # the start showed the words the text had then
    assert start.args["markdown_text"] == "all of "
    [refused] = slack.calls_to("chat.stopStream")  # the stop was to carry the rest: an append took it instead
    assert refused.status == 429 and refused.args["markdown_text"] == "it"
    [reply] = slack.bot_replies(CHANNEL, THREAD)
    assert reply.streaming
    slack.limits.pop("chat.stopStream")
    await w._writers.close(grace=10)
    assert not reply.streaming
    assert api.pacer(TEAM).native_in_flight == 0


async def test_an_answer_that_finishes_while_an_update_waits_is_finished_once(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    """The final text used to be synced twice when the answer finished during an intermediate wait: each
    stream got two chat.stopStream calls, and the duplicates used up Tier 2 for other answers."""
    import asyncio

    slack.limits["chat.appendStream"] = (1, 60.0)  # the intermediate update waits for a slot that never comes
    w = writer(api, "native")
    await w.start()
    w.append("first ")
    await asyncio.sleep(0.1)  # the first append went out; the next intermediate waits
    w.append("and last")
    await asyncio.sleep(0.1)
    slack.limits.pop("chat.appendStream")
    api.pacer(TEAM).budget._blocked_until.clear()
    await w.finish()
    await w._writers.close(grace=10)
    assert shown(slack) == "first and last"
    assert len(slack.calls_to("chat.stopStream")) == 1


# Streams that end early: expired, refused as too long, rolled over, left for a placeholder -----------------


def numbered(text: str) -> list[str]:
    import re

    return re.findall(r"w\d{5}", text)


def slack_words(slack: fs.FakeSlack) -> list[str]:
    return numbered("\n".join(m.text for m in slack.bot_replies(CHANNEL, THREAD)))


@pytest.mark.parametrize("error", ["message_not_in_streaming_state", "msg_too_long"])
async def test_a_stream_ended_mid_word_continues_with_that_whole_word(
    slack: fs.FakeSlack, api: SlackApi, error: str
) -> None:
    """Appends used to carry whatever had arrived: a stream that ended then showed "w000" and the message
    that continued it "03", so people read a word missing."""
    import asyncio

    w = writer(api, "native")
    await w.start()
    w.append("w00001 w00002 w000")  # a model's chunks end mid-word
    await asyncio.sleep(0.2)  # an intermediate append goes out
    if error == "message_not_in_streaming_state":
        slack.bot_replies(CHANNEL, THREAD)[0].stream_started -= slack.stream_ttl  # Slack expired it
    else:
        # Slack's limit is lower than we know: for the call that carries the rest, an append or the stop
        slack.errors["chat.appendStream"] = deque([error])
        slack.errors["chat.stopStream"] = deque([error])
    w.append("03 w00004\nw00005")
    await w.finish()
    await w._writers.close(grace=10)
    first, second = slack.bot_replies(CHANNEL, THREAD)
    assert first.text == "w00001 w00002 " and second.text == "w00003 w00004\nw00005"
    assert not first.live_stream(slack.stream_ttl)


async def test_a_stream_that_expires_inside_a_code_block_continues_inside_one(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    import asyncio

    w = writer(api, "native")
    await w.start()
    w.append("intro\n```\nline 1\n")
    await asyncio.sleep(0.2)
    slack.bot_replies(CHANNEL, THREAD)[0].stream_started -= slack.stream_ttl
    w.append("line 2\n```\noutro")
    await w.finish()
    first, second = slack.bot_replies(CHANNEL, THREAD)
    assert first.text == "intro\n```\nline 1\n"
    assert second.text == "```\nline 2\n```\noutro"  # the code block reopened, as a cut between updates does


async def test_a_slack_limit_lower_than_ours_loses_nothing(slack: fs.FakeSlack, api: SlackApi) -> None:
    import asyncio

    slack.stream_limit = 2_000  # msg_too_long far before the bot's own cut
    text = " ".join(f"w{i:05d}" for i in range(1, 1_201))
    w = writer(api, "native")
    await w.start()
    for i in range(0, len(text), 250):
        w.append(text[i : i + 250])
        await asyncio.sleep(0.02)
    await w.finish()
    await w._writers.close(grace=10)
    assert slack_words(slack) == numbered(text)
    replies = slack.bot_replies(CHANNEL, THREAD)
    assert all(len(m.text) <= (slack.stream_limit if m.stream_started else slack.update_limit) for m in replies)
    assert not any(m.streaming for m in replies)


async def test_an_old_stream_rolls_over_before_slack_expires_it(slack: fs.FakeSlack, api: SlackApi) -> None:
    import asyncio

    slack.stream_ttl = 1.2
    w = Writers(api, mode="native", min_interval=0.05, stream_max_age=0.4).new(
        TEAM, CHANNEL, THREAD, recipient_user_id="U0ADA", answer_id=1
    )
    text = " ".join(f"w{i:05d}" for i in range(1, 301))
    await w.start()
    for i in range(0, len(text), 20):
        w.append(text[i : i + 20])
        await asyncio.sleep(0.03)  # about 2 s in all
    await w.finish()
    await w._writers.close(grace=10)
    replies = slack.bot_replies(CHANNEL, THREAD)
    assert slack_words(slack) == numbered(text)
    assert len(replies) >= 3 and all(m.stream_started and not m.streaming for m in replies)
    assert not any(c.error for c in slack.calls)  # none expired, none refused


async def test_an_empty_stream_is_stopped_before_it_is_removed_for_a_placeholder(
    slack: fs.FakeSlack, api: SlackApi
) -> None:
    """Slack refuses chat.delete on a message still streaming: the empty stream used to stay in the thread."""
    import asyncio

    slack.status_refused = {CHANNEL}  # no loading state here: a stream is the first sign of life
    w = writer(api, "native")
    await w.start()
    w.set_status("_Trying again…_")
    await asyncio.sleep(0.2)  # no text yet: a placeholder shows the status
    w.append("the answer")
    await w.finish()
    [reply] = slack.bot_replies(CHANNEL, THREAD)
    assert reply.text == "the answer" and not reply.stream_started
    assert not any(c.error for c in slack.calls if c.method != "assistant.threads.setStatus")
    assert not any(m.streaming for m in slack.deleted)


@pytest.mark.parametrize(
    ("text", "notes", "shown"),
    [
        ("Done.", [], "Done."),
        ("Done.", ["Cut short."], "Done.\n\n_⚠️ Cut short._"),
        ("", ["Failed."], "_⚠️ Failed._"),
        # cut off inside a code block: the block is closed, so the note is not shown as code
        ("```\n{\"a\": 1", ["Stopped."], "```\n{\"a\": 1\n```\n\n_⚠️ Stopped._"),
        ("```\nx\n```\nafter", ["Stopped."], "```\nx\n```\nafter\n\n_⚠️ Stopped._"),
    ],
)
def test_notes_follow_the_answer_outside_any_code_block(text: str, notes: list[str], shown: str) -> None:
    assert with_notes(text, notes) == shown


@pytest.mark.parametrize("mode", ["update", "native"])
async def test_an_answer_taken_over_before_its_first_message_keeps_its_text_so_far(
    slack: fs.FakeSlack, api: SlackApi, mode: str
) -> None:
    """The process that wrote it stopped before its first text reached Slack: no message to reuse, and the text
    it had stored (which the model continues) opens the answer."""
    w = writer(api, mode)
    await w.start(shown="You sa")
    w.append("id: hello")
    await w.finish()
    assert shown(slack) == "You said: hello"
    await w._writers.close(grace=10)
