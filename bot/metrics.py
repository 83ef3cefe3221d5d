"""Prometheus metrics: how answers end and how long they take, what the model costs, how Slack answers.

Each bot owns a `Metrics` with its own registry (tests run many bots in one process; the global registry
would mix them). The rest of the bot calls its small typed methods; label children are resolved once and
kept, so an answer costs a handful of increments, never work per streamed chunk.

Labels stay bounded: outcomes, token types, Slack methods and error codes come from fixed sets (an unknown
Slack error becomes `error`), models from the deployment's configuration; never a channel, user or team id.
The model metrics follow OpenTelemetry's GenAI conventions (`gen_ai.client.token.usage`,
`gen_ai.client.operation.duration`), with their attribute names spelled as Prometheus labels.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# How an answer ended: `refused` is a question the admission policy (a quota) turned away before the model.
OUTCOMES = ("complete", "partial", "failed", "stopped", "refused")
PROVIDER = "mistral_ai"
OPERATION = "chat"
TOKEN_TYPES = ("input", "output")

# Slack error codes worth a label value of their own (Slack's documented ones for the methods the bot calls);
# any other code is counted as `error`, so a new code from Slack cannot add series without bound.
SLACK_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "not_authed",
        "invalid_auth",
        "token_revoked",
        "missing_scope",
        "message_not_found",
        "cant_update_message",
        "cant_delete_message",
        "restricted_action_thread_locked",
        "message_not_in_streaming_state",
        "stopped_by_user",
        "streaming_state_conflict",
        "message_not_owned_by_app",
        "invalid_chunks",
        "missing_recipient_user_id",
        "missing_recipient_team_id",
        "channel_type_not_supported",
        "user_not_found",
        "internal_error",
        "fatal_error",
        "request_timeout",
        "service_unavailable",
    }
)
# Results that are not Slack error codes: a success, a 429, an HTTP 5xx page, no answer at all.
SLACK_RESULTS = frozenset({"ok", "ratelimited", "http_5xx", "unreachable", "error"}) | SLACK_ERRORS

# OpenTelemetry's GenAI conventions advise these boundaries, so dashboards built for them read ours as well.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
OPERATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
# A first token within a second feels instant; past ten seconds people start to wonder.
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)
# Whole answers: seconds for a line, minutes for a long answer (the total timeout is ten minutes).
ANSWER_BUCKETS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)

MODEL_LABELS = ("gen_ai_provider_name", "gen_ai_operation_name", "gen_ai_request_model")


def slack_result(error: str) -> str:
    """A Slack call's error (Slack's code, `ratelimited`, `http_503`, `unreachable`) as a bounded label value."""
    if error in SLACK_RESULTS:
        return error
    if error.startswith("http_5"):
        return "http_5xx"
    if error.startswith("unreachable"):
        return "unreachable"
    return "error"


class ModelMetrics:
    """The label children of one model, resolved once (per model name, for the life of the bot)."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        labels = (PROVIDER, OPERATION, model)
        self._metrics = metrics
        self._labels = labels
        self._input = metrics.token_usage.labels(*labels, "input")
        self._output = metrics.token_usage.labels(*labels, "output")
        self._cached = metrics.cached_tokens.labels(*labels)
        self._succeeded = metrics.operation_duration.labels(*labels, "")

    def tokens(self, prompt: int | None, completion: int | None, cached: int | None = None) -> None:
        """The usage of one finished request, as the model reported it (prompt tokens include cached ones)."""
        if isinstance(prompt, int):  # the API's usage is read defensively: anything else is left out
            self._input.observe(prompt)
        if isinstance(completion, int):
            self._output.observe(completion)
        if isinstance(cached, int) and cached > 0:
            self._cached.inc(cached)

    def operation(self, seconds: float, error_type: str = "") -> None:
        """One request to the model, from sending it to the end of its stream; `error_type` empty on success."""
        if not error_type:
            self._succeeded.observe(seconds)
        else:  # failures are rare: their children are looked up as they come
            self._metrics.operation_duration.labels(*self._labels, error_type).observe(seconds)

    def first_token(self, seconds: float) -> None:
        self._metrics.first_token(seconds)

    def retry(self, reason: str) -> None:
        self._metrics.model_retry(reason)


class Metrics:
    """Every metric the bot exposes, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.answers = Counter("bot_answers", "Answers, by how they ended.", ["outcome"], registry=registry)
        self._outcomes = {outcome: self.answers.labels(outcome) for outcome in OUTCOMES}  # all shown from 0
        self.in_flight = Gauge("bot_answers_in_flight", "Answers being written now.", registry=registry)
        self.answer_duration = Histogram(
            "bot_answer_duration_seconds",
            "From the question to the complete answer (complete answers only).",
            buckets=ANSWER_BUCKETS,
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "bot_time_to_first_token_seconds",
            "From the model request (its first attempt) to the first text of the answer.",
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per model request, by type (input includes cached input).",
            [*MODEL_LABELS, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.cached_tokens = Counter(
            "bot_model_cached_input_tokens",
            "Input tokens the model's prompt cache served (billed at a tenth of the input price).",
            list(MODEL_LABELS),
            registry=registry,
        )
        self.operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Model requests (each attempt), from sending to the end of the stream; error_type empty on success.",
            [*MODEL_LABELS, "error_type"],
            buckets=OPERATION_BUCKETS,
            registry=registry,
        )
        self.model_retries = Counter(
            "bot_model_retries",
            "Model requests tried again, by the error that failed them.",
            ["reason"],
            registry=registry,
        )
        self.slack_calls = Counter(
            "slack_api_calls", "Slack Web API calls, by method and result.", ["method", "result"], registry=registry
        )
        self.pacer_waiting = Gauge(
            "slack_pacer_waiting", "Slack calls queued for a slot of their workspace's rate budget.", registry=registry
        )
        self._models: dict[str, ModelMetrics] = {}
        self._slack: dict[tuple[str, str], Callable[[], None]] = {}

    # answers (the conversation calls these) ------------------------------------------------------------

    def answer_started(self) -> None:
        self.in_flight.inc()

    def answer_finished(self, outcome: str | None, seconds: float) -> None:
        """An answer left this process: `outcome` is one of OUTCOMES, or None when another process finishes it
        (a lease lost, a hand-over at shutdown: counted there). `seconds` since the question (timed when complete)."""
        self.in_flight.dec()
        if outcome is None:
            return
        counter = self._outcomes.get(outcome)
        if counter is None:
            raise ValueError(f"unknown answer outcome {outcome!r}; expected one of {OUTCOMES}")
        counter.inc()
        if outcome == "complete":
            self.answer_duration.observe(seconds)

    def first_token(self, seconds: float) -> None:
        self.time_to_first_token.observe(seconds)

    # the model ------------------------------------------------------------------------------------------

    def model(self, name: str) -> ModelMetrics:
        """The metrics of one model (the deployment's and its personas' models: a bounded set)."""
        found = self._models.get(name)
        if found is None:
            found = self._models[name] = ModelMetrics(self, name)
        return found

    def model_tokens(self, model: str, prompt: int | None, completion: int | None, cached: int | None = None) -> None:
        self.model(model).tokens(prompt, completion, cached)

    def model_call(self, model: str, seconds: float, error_type: str = "") -> None:
        self.model(model).operation(seconds, error_type)

    def model_retry(self, reason: str) -> None:
        """A model request is tried again; `reason` is the `ErrorKind` value of the error that failed it."""
        self.model_retries.labels(reason).inc()

    # Slack -------------------------------------------------------------------------------------------

    def slack_call(self, method: str, error: str = "") -> None:
        """One Web API call's answer: `error` empty for success, else Slack's code or `ratelimited`,
        `http_503`, `unreachable` (bucketed by `slack_result`)."""
        key = (method, slack_result(error) if error else "ok")
        count = self._slack.get(key)
        if count is None:
            count = self._slack[key] = self.slack_calls.labels(*key).inc
        count()

    def watch_pacers(self, waiting: Callable[[], int]) -> None:
        """`waiting` (the calls queued over every workspace's pacer) is read at each scrape."""
        self.pacer_waiting.set_function(waiting)

    # exposition -----------------------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
