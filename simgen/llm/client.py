"""simgen's one LLM client: the Anthropic Messages API with structured output, retries, cache and budget.

Scenario ideation and the text generators both go through :class:`LLMClient`:

- **Structured output through tool use.** :meth:`LLMClient.structured` turns a pydantic model into a tool,
  forces it with ``tool_choice``, validates the reply's tool input as data (size, then the model, then an
  optional semantic ``check``) and sends problems back as an ``is_error`` tool result for up to
  ``max_repairs`` repair rounds. A refusal is an outcome, not an exception.
- **Retries owned here.** The SDK's own retries are off (``max_retries=0``), so attempt counts are exact:
  429, 408/409, 5xx (529 included), timeouts and connection errors are retried with exponential backoff and
  deterministic jitter, honouring ``retry-after`` up to a cap; then :class:`~simgen.llm.errors.LLMError`.
- **Content-addressed cache** (:mod:`simgen.llm.cache`): a cached request makes no HTTP request at all.
- **Accounting and budget** (:mod:`simgen.llm.budget`).
- **Bounded concurrency**, results in request order (:meth:`LLMClient.map`): at most ``concurrency`` HTTP
  requests in flight per client, over every thread and :meth:`LLMClient.fork` (one fork per unit of work
  counts what that unit used); a :class:`~simgen.llm.budget.SharedTally` makes the budget a whole run's.
- **Key hygiene.** The SDK reads ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` itself; an explicit
  ``api_key`` goes straight to the SDK client and is kept nowhere else. Error messages and logged text are
  scrubbed of the credential, errors are raised without the SDK exception (whose request carries the auth
  header) in their chain, and the client refuses to be pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_tz
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from simgen.errors import DependencyMissing, SimgenError
from simgen.llm.budget import Budget, Ledger, SharedTally
from simgen.llm.cache import ResponseCache, looks_like_message, request_key
from simgen.llm.errors import APIKeyMissing, LLMError
from simgen.llm.schema import shared_tool_spec, validate_tool_input

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

KEY_ENV = "ANTHROPIC_API_KEY"
#: The model simgen's commands use unless told otherwise.
DEFAULT_MODEL = "claude-sonnet-4-5"
_CREDENTIAL_ENVS = (KEY_ENV, "ANTHROPIC_AUTH_TOKEN")
_RETRY_STATUS = frozenset({408, 409, 429})
_MAX_REPAIR_TEXT = 4000
_REDACTED = "[redacted]"


def import_anthropic() -> ModuleType:
    """Import the ``anthropic`` SDK, or raise :class:`~simgen.errors.DependencyMissing` naming the extra."""
    try:
        import anthropic
    except ImportError:
        raise DependencyMissing("anthropic", "llm", "LLM requests") from None
    return anthropic


def has_api_key(api_key: str | None = None) -> bool:
    """Whether a credential is available: ``api_key``, ``ANTHROPIC_API_KEY`` or ``ANTHROPIC_AUTH_TOKEN``."""
    return bool(api_key or any(os.environ.get(name) for name in _CREDENTIAL_ENVS))


def require_api_key(api_key: str | None = None, *, fallback: str = "") -> None:
    """Raise a one-line :class:`~simgen.llm.errors.APIKeyMissing` when no credential is available.

    Args:
        api_key: An explicit key, if the caller has one.
        fallback: What the user can do instead, e.g. ``"or pass --offline"``; appended to the message.
    """
    if not has_api_key(api_key):
        tail = f"; {fallback}" if fallback else ""
        raise APIKeyMissing(f"{KEY_ENV} is not set; export it to use the Anthropic API{tail}")


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (8 characters or more) replaced by ``[redacted]``."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, _REDACTED)
    return text


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_retry_after(headers: Any) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), else ``None``."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            parsed = parsedate_tz(value) if scale == 1.0 else None
            if parsed is not None:
                from email.utils import mktime_tz

                return max(0.0, mktime_tz(parsed) - time.time())
    return None


@dataclass(frozen=True)
class LLMSettings:
    """What every request of a client shares.

    Args:
        model: The model id, e.g. ``claude-sonnet-4-5``.
        max_tokens: Output token limit per request.
        temperature: Sampling temperature; ``None`` leaves it to the API.
        params: More request-body fields (``top_p``, ``stop_sequences``, ``metadata``...); part of the cache key.
        concurrency: Requests in flight at once in :meth:`LLMClient.map`.
        timeout_s: Per-attempt HTTP timeout.
        max_retries: Retries after the first attempt (so ``max_retries + 1`` attempts at most).
        backoff_base_s: First backoff delay; it doubles per retry up to ``backoff_max_s``, times a jitter
            factor in [0.5, 1) derived from the request key and the attempt (deterministic).
        backoff_max_s: Backoff ceiling.
        retry_after_cap_s: The most a server's ``retry-after`` may make the client wait.
        max_repairs: Repair rounds of :meth:`LLMClient.structured` after an invalid tool input.
        max_input_bytes: Largest accepted tool input, as compact UTF-8 JSON.
    """

    model: str
    max_tokens: int = 2048
    temperature: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 4
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 16.0
    retry_after_cap_s: float = 60.0
    max_repairs: int = 2
    max_input_bytes: int = 64_000

    def __post_init__(self) -> None:
        checks = {
            "model": bool(self.model),
            "max_tokens": self.max_tokens >= 1,
            "concurrency": self.concurrency >= 1,
            "timeout_s": self.timeout_s > 0,
            "max_retries": self.max_retries >= 0,
            "backoff_base_s": self.backoff_base_s >= 0,
            "backoff_max_s": self.backoff_max_s >= 0,
            "retry_after_cap_s": self.retry_after_cap_s >= 0,
            "max_repairs": self.max_repairs >= 0,
            "max_input_bytes": self.max_input_bytes >= 2,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"LLMSettings.{name}: invalid value {getattr(self, name)!r}")
        if "stream" in self.params:
            raise ValueError("LLMSettings.params: 'stream' is not supported (responses are cached whole)")


@dataclass(frozen=True)
class LLMResponse:
    """One Messages API response, fresh or from the cache.

    Attributes:
        key: The request's cache key (a hash of the request and salt: use it as the prompt hash).
        raw: The raw Message JSON.
        cached: Whether it came from the cache (no request was made).
        attempts: HTTP attempts it took (0 when cached).
    """

    key: str
    raw: dict[str, Any]
    cached: bool
    attempts: int

    @property
    def model(self) -> str:
        """The model that answered."""
        return str(self.raw.get("model", ""))

    @property
    def stop_reason(self) -> str | None:
        """``end_turn``, ``tool_use``, ``max_tokens``, ``refusal``..."""
        return self.raw.get("stop_reason")

    @property
    def content(self) -> list[dict[str, Any]]:
        """The content blocks (dicts)."""
        return [b for b in self.raw.get("content", []) if isinstance(b, dict)]

    @property
    def input_tokens(self) -> int:
        """Input tokens, prompt-cache reads and writes included."""
        usage = self.raw.get("usage") or {}
        names = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        return sum(int(usage.get(n) or 0) for n in names)

    @property
    def output_tokens(self) -> int:
        """Output tokens."""
        return int((self.raw.get("usage") or {}).get("output_tokens") or 0)

    def tool_uses(self) -> list[dict[str, Any]]:
        """The ``tool_use`` blocks."""
        return [b for b in self.content if b.get("type") == "tool_use"]

    def text(self) -> str:
        """The text blocks, joined."""
        return "".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")


@dataclass(frozen=True)
class StructuredResult(Generic[T]):
    """The outcome of :meth:`LLMClient.structured`; every field is data.

    Attributes:
        status: ``ok`` (``value`` is set), ``invalid`` (still invalid after the repair rounds) or ``refused``
            (``stop_reason == "refusal"``, or no call of the tool).
        value: The validated model instance when ``ok``.
        repairs: Repair rounds sent.
        errors: The problem text of each invalid round, in order.
        refusal: Why it counts as refused.
        last_input: The last tool input received (data, for logging a rejection), if any.
        responses: Every response of the exchange, in order.
    """

    status: Literal["ok", "invalid", "refused"]
    value: T | None
    repairs: int
    errors: tuple[str, ...]
    refusal: str | None
    last_input: Any
    responses: tuple[LLMResponse, ...]

    @property
    def input_tokens(self) -> int:
        """Input tokens over every round."""
        return sum(r.input_tokens for r in self.responses)

    @property
    def output_tokens(self) -> int:
        """Output tokens over every round."""
        return sum(r.output_tokens for r in self.responses)

    def record(self) -> dict[str, Any]:
        """A JSON-ready line for a request log (e.g. ``ideation.jsonl``); identical on a cached rerun."""
        return {
            "status": self.status,
            "model": self.responses[-1].model if self.responses else None,
            "request_keys": [r.key for r in self.responses],
            "repairs": self.repairs,
            "errors": list(self.errors),
            "refusal": self.refusal,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True)
class StructuredRequest(Generic[T]):
    """The arguments of one :meth:`LLMClient.structured` call, for :meth:`LLMClient.structured_many`."""

    prompt: str | list[dict[str, Any]]
    output: type[T]
    system: str | None = None
    tool_name: str | None = None
    description: str | None = None
    salt: str = ""
    check: Callable[[T], None] | None = None
    max_tokens: int | None = None
    temperature: float | None = None


def _replay(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assistant turn to send back in a repair round, in the documented input shapes."""
    out: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            if block.get("text"):  # the API rejects empty text blocks
                out.append({"type": "text", "text": block["text"]})
        elif kind == "tool_use":
            out.append(
                {"type": "tool_use", "id": block.get("id"), "name": block.get("name"), "input": block.get("input")}
            )
        else:
            out.append(block)
    return out


class LLMClient:
    """The LLM client layer: see the module docstring.

    Args:
        settings: Model and request policy.
        cache_dir: Folder of the response cache (e.g. ``OUT/.simgen/llm-cache``); ``None`` disables it.
        budget: Request and token limits of this run.
        api_key: An explicit key; by default the SDK reads ``ANTHROPIC_API_KEY``. It is handed to the SDK
            client only.
        base_url: An explicit endpoint; by default the SDK reads ``ANTHROPIC_BASE_URL``.
        shared: A run-wide tally (:class:`~simgen.llm.budget.SharedTally`): the budget then bounds what every
            process of the run pays for together, and the run's paid requests are counted there.

    Raises:
        DependencyMissing: The ``anthropic`` SDK is not installed.
    """

    def __init__(
        self,
        settings: LLMSettings,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        budget: Budget | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        shared: SharedTally | None = None,
    ) -> None:
        anthropic = import_anthropic()
        self.settings = settings
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.ledger = Ledger(budget, shared=shared)
        # HTTP requests in flight at once, whatever number of threads (nested maps, forks) asks.
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        self._owns_sdk = True
        # max_retries=0: the retry policy is ours, so attempts and budget counts are exact.
        try:
            self._sdk = anthropic.Anthropic(
                api_key=api_key, base_url=base_url, max_retries=0, timeout=settings.timeout_s
            )
        except anthropic.AnthropicError as exc:  # e.g. a broken credentials profile named by ANTHROPIC_PROFILE
            problem = _one_line(scrub(str(exc), [api_key, *(os.environ.get(n) for n in _CREDENTIAL_ENVS)]))
            raise LLMError(f"cannot set up the Anthropic client: {problem}") from None
        self._flights_lock = threading.Lock()
        self._flights: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        cache = str(self.cache.root) if self.cache else None
        return f"LLMClient(model={self.settings.model!r}, cache={cache!r})"

    def __reduce__(self) -> Any:
        raise TypeError("LLMClient cannot be pickled (its SDK client holds a credential): build one per process")

    def close(self) -> None:
        """Close the HTTP connections (a :meth:`fork` leaves them to its parent)."""
        if self._owns_sdk:
            self._sdk.close()

    def fork(self) -> LLMClient:
        """A client that shares this one's connections, cache, concurrency bound and budget, with its own ledger.

        Everything the fork counts is also counted here. Use one fork per unit of work that runs alongside
        others (threads), to know what that unit used: ``fork.summary()["responses"]``.
        """
        child = object.__new__(LLMClient)
        child.__dict__.update(self.__dict__)
        child.ledger = Ledger(parent=self.ledger)
        child._owns_sdk = False
        return child

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """The endpoint in use."""
        return str(self._sdk.base_url)

    def summary(self) -> dict[str, Any]:
        """Token, cost, outcome and budget accounting (see :mod:`simgen.llm.budget`)."""
        return self.ledger.summary()

    # -- requests ----------------------------------------------------------------------------------------

    def request_body(
        self,
        messages: list[dict[str, Any]],
        *,
        system: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> dict[str, Any]:
        """The full request body under this client's settings; it is what the cache key hashes."""
        s = self.settings
        body: dict[str, Any] = {"model": s.model, "max_tokens": max_tokens or s.max_tokens, "messages": messages}
        if system:
            body["system"] = system
        if tools:
            body["tools"] = tools
        if tool_choice:
            body["tool_choice"] = tool_choice
        temp = s.temperature if temperature is None else temperature
        if temp is not None:
            body["temperature"] = temp
        body.update(s.params)
        return body

    def create(self, body: dict[str, Any], *, salt: str = "") -> LLMResponse:
        """Send one request body (or answer it from the cache).

        Args:
            body: A Messages API request body (see :meth:`request_body`).
            salt: Part of the cache key: callers vary it (a record id, a seed) to get distinct samples of
                one prompt; equal body and salt give the same cached response.

        Returns:
            The response.

        Raises:
            BudgetExhausted: No request or token budget left (cached answers are still served).
            APIKeyMissing: No credential and the answer is not cached.
            LLMError: A non-retryable API error, or every retry failed.
        """
        key = request_key(body, salt)
        with self._flight(key):
            raw = self.cache.get(key) if self.cache else None
            if raw is not None:
                resp = LLMResponse(key, raw, cached=True, attempts=0)
                self.ledger.record(resp.model or body["model"], resp.input_tokens, resp.output_tokens, cached=True)
                return resp
            self._require_credential()
            self.ledger.reserve()
            try:
                with self._slots:
                    raw, attempts = self._fetch(body, key)
            except BaseException:
                self.ledger.release()
                raise
            resp = LLMResponse(key, raw, cached=False, attempts=attempts)
            self.ledger.record(resp.model or body["model"], resp.input_tokens, resp.output_tokens, cached=False)
            if self.cache:
                self.cache.put(key, body, salt, raw)
            return resp

    @contextmanager
    def _flight(self, key: str) -> Iterator[None]:
        """Serialize identical requests, so the second reads the first's cached answer (no double charge)."""
        if self.cache is None:
            yield
            return
        with self._flights_lock:
            lock = self._flights.setdefault(key, threading.Lock())
        with lock:
            yield

    def _require_credential(self) -> None:
        sdk = self._sdk
        if (
            sdk.api_key is None
            and getattr(sdk, "auth_token", None) is None
            and getattr(sdk, "credentials", None) is None
        ):
            require_api_key()

    def _secrets(self) -> list[str | None]:
        sdk = self._sdk
        return [sdk.api_key, getattr(sdk, "auth_token", None), *(os.environ.get(n) for n in _CREDENTIAL_ENVS)]

    def _delay(self, key: str, attempt: int, retry_after: float | None) -> float:
        s = self.settings
        base = min(s.backoff_max_s, s.backoff_base_s * 2**attempt)
        # Jitter decorrelates concurrent requests; derived from the key so that a run replays the same waits.
        u = int.from_bytes(hashlib.sha256(f"{key}:{attempt}".encode()).digest()[:8], "big") / 2**64
        delay = base * (0.5 + 0.5 * u)
        if retry_after is not None:
            delay = max(delay, min(retry_after, s.retry_after_cap_s))
        return delay

    def _attempt(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, int | None, str, bool, float | None]:
        """One HTTP attempt: ``(raw, status, problem, retryable, retry_after)``; ``raw`` is set on success."""
        anthropic = import_anthropic()
        rest = {k: v for k, v in body.items() if k not in ("model", "max_tokens", "messages")}
        try:
            resp = self._sdk.messages.with_raw_response.create(
                model=body["model"], max_tokens=body["max_tokens"], messages=body["messages"], extra_body=rest
            )
            text = resp.http_response.text
        except anthropic.APIStatusError as exc:
            status = int(exc.status_code)
            err = exc.body.get("error") if isinstance(exc.body, dict) else None
            detail = err.get("message") if isinstance(err, dict) and err.get("message") else exc.message
            retryable = status in _RETRY_STATUS or status >= 500
            return None, status, f"HTTP {status}: {detail}", retryable, parse_retry_after(exc.response.headers)
        except anthropic.APITimeoutError:
            return None, None, f"timed out after {self.settings.timeout_s:g} s", True, None
        except anthropic.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection failed"
            return None, None, f"connection error ({cause})", True, None
        text = scrub(text, self._secrets())  # a misbehaving endpoint could echo the credential
        try:
            raw = json.loads(text)
        except json.JSONDecodeError:
            return None, 200, "the response is not JSON", False, None
        if not looks_like_message(raw):
            return None, 200, "the response is not a Message (no type/content/usage)", False, None
        return raw, 200, "", False, None

    def _fetch(self, body: dict[str, Any], key: str) -> tuple[dict[str, Any], int]:
        s = self.settings
        attempts = 0
        while True:
            self.ledger.attempt(retry=attempts > 0)
            attempts += 1
            raw, status, problem, retryable, retry_after = self._attempt(body)
            if raw is not None:
                return raw, attempts
            problem = _one_line(scrub(problem, self._secrets()))
            if status in (401, 403):
                problem += f" (check {KEY_ENV})"
            if not retryable or attempts > s.max_retries:
                tries = f" after {attempts} attempts" if attempts > 1 else ""
                raise LLMError(
                    f"Anthropic request to {body['model']} failed{tries}: {problem}",
                    status_code=status,
                    attempts=attempts,
                )
            delay = self._delay(key, attempts - 1, retry_after)
            log.info("LLM request %s: %s; retry %d/%d in %.2f s", key[:12], problem, attempts, s.max_retries, delay)
            time.sleep(delay)

    # -- structured output -------------------------------------------------------------------------------

    def structured(
        self,
        prompt: str | list[dict[str, Any]],
        output: type[T],
        *,
        system: str | None = None,
        tool_name: str | None = None,
        description: str | None = None,
        salt: str = "",
        check: Callable[[T], None] | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> StructuredResult[T]:
        """Ask for one ``output`` through a forced tool call, repairing invalid answers.

        Args:
            prompt: The user message text, or a whole ``messages`` list.
            output: The pydantic model of the answer (its JSON Schema is the tool's ``input_schema``; bound
                list lengths and string sizes there).
            system: The system prompt.
            tool_name: The tool's name (default derived from the model's class name).
            description: The tool's description (default the model's docstring).
            salt: Part of the cache key (see :meth:`create`).
            check: A semantic check of a valid instance; a :class:`~simgen.errors.SimgenError` or
                ``ValueError`` it raises is sent back for repair like a schema error.
            max_tokens: Overrides the settings for this call.
            temperature: Overrides the settings for this call.

        Returns:
            The outcome; invalid answers and refusals are outcomes, not exceptions.

        Raises:
            BudgetExhausted, APIKeyMissing, LLMError: As :meth:`create`.
        """
        tool = shared_tool_spec(output, tool_name, description)
        name = tool["name"]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        responses: list[LLMResponse] = []
        errors: list[str] = []
        last_input: Any = None
        for round_ in range(self.settings.max_repairs + 1):
            body = self.request_body(
                messages,
                system=system,
                tools=[tool],
                tool_choice={"type": "tool", "name": name},
                max_tokens=max_tokens,
                temperature=temperature,
            )
            resp = self.create(body, salt=salt)
            responses.append(resp)
            uses = [b for b in resp.tool_uses() if b.get("name") == name]
            refusal = self._refusal(resp, bool(uses))
            if refusal is not None:
                return self._done("refused", None, round_, errors, refusal, last_input, responses)
            last_input = uses[0].get("input")
            value, problem = validate_tool_input(output, last_input, max_bytes=self.settings.max_input_bytes)
            if value is not None and check is not None:
                try:
                    check(value)
                except (SimgenError, ValueError) as exc:
                    value, problem = None, str(exc)
            if value is not None:
                return self._done("ok", value, round_, errors, None, last_input, responses)
            problem = str(problem)[:_MAX_REPAIR_TEXT]
            errors.append(problem)
            if round_ == self.settings.max_repairs:
                break
            messages = [*messages, *self._repair_turns(resp, uses[0], problem, name)]
        return self._done("invalid", None, self.settings.max_repairs, errors, None, last_input, responses)

    @staticmethod
    def _refusal(resp: LLMResponse, called: bool) -> str | None:
        if resp.stop_reason == "refusal":
            details = resp.raw.get("stop_details") or {}
            why = details.get("explanation") if isinstance(details, dict) else None
            return _one_line(f"refusal: {why or resp.text() or 'no explanation'}")
        if not called:
            return _one_line(f"no tool call (stop_reason={resp.stop_reason}): {resp.text()}")
        return None

    @staticmethod
    def _repair_turns(resp: LLMResponse, use: dict[str, Any], problem: str, name: str) -> list[dict[str, Any]]:
        """The assistant's invalid call, then an ``is_error`` tool result per call and a request to retry."""
        results = [
            {
                "type": "tool_result",
                "tool_use_id": block.get("id"),
                "is_error": True,
                "content": problem if block is use else "Ignored: call the tool once.",
            }
            for block in resp.tool_uses()
        ]
        ask = {"type": "text", "text": f"The input to `{name}` is invalid (see the tool result). Call it again, fixed."}
        return [{"role": "assistant", "content": _replay(resp.content)}, {"role": "user", "content": [*results, ask]}]

    def _done(
        self,
        status: Literal["ok", "invalid", "refused"],
        value: T | None,
        repairs: int,
        errors: list[str],
        refusal: str | None,
        last_input: Any,
        responses: list[LLMResponse],
    ) -> StructuredResult[T]:
        self.ledger.outcome(status, repairs)
        return StructuredResult(status, value, repairs, tuple(errors), refusal, last_input, tuple(responses))

    # -- concurrency -------------------------------------------------------------------------------------

    def map(self, fn: Callable[[Any], R], items: Iterable[Any]) -> list[R]:
        """Run ``fn`` over ``items`` with at most ``settings.concurrency`` in flight; results in input order.

        On the first exception the calls not yet started are cancelled, the running ones finish (their
        answers are cached), and the exception of the lowest index is raised with a ``results`` attribute:
        the list of results, ``None`` where none was produced. A resume then replays the finished ones free.
        """
        items = list(items)
        results: list[Any] = [None] * len(items)
        if not items:
            return results
        failures: dict[int, BaseException] = {}
        workers = min(self.settings.concurrency, len(items))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simgen-llm") as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for fut in as_completed(futures):
                if fut.cancelled():
                    continue
                exc = fut.exception()
                if exc is None:
                    results[futures[fut]] = fut.result()
                    continue
                failures[futures[fut]] = exc
                for other in futures:
                    other.cancel()
        if failures:
            first = failures[min(failures)]
            first.results = results  # type: ignore[attr-defined]
            raise first
        return results

    def structured_many(self, requests: Sequence[StructuredRequest[Any]]) -> list[StructuredResult[Any]]:
        """:meth:`structured` over many requests with bounded concurrency, results in request order."""

        def one(req: StructuredRequest[Any]) -> StructuredResult[Any]:
            return self.structured(
                req.prompt,
                req.output,
                system=req.system,
                tool_name=req.tool_name,
                description=req.description,
                salt=req.salt,
                check=req.check,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
            )

        return self.map(one, requests)


def cache_dir_for(out_dir: str | os.PathLike[str]) -> Path:
    """The conventional cache folder of an output folder: ``OUT/.simgen/llm-cache``."""
    return Path(out_dir) / ".simgen" / "llm-cache"
