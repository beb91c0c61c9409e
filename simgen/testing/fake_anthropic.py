"""A fake Anthropic Messages API on 127.0.0.1, for tests through the real SDK over HTTP.

It is a fake: it answers ``POST /v1/messages`` from a script, not from a model. Shipped in the package so
plugin authors can test their LLM-backed generators offline::

    from simgen.testing.fake_anthropic import FakeAnthropic, tool_use, http_error

    with FakeAnthropic([http_error(429, retry_after=0.1), tool_use({"name": "x"})]) as server:
        client = LLMClient(LLMSettings(model="claude-fake"), api_key="test", base_url=server.base_url)
        ...
        assert server.hits == 2

The script is a list of replies (one per request, in arrival order) or a callable
``(FakeRequest) -> FakeReply`` (use one when requests run concurrently, so a reply depends on the request,
not on arrival order). Replies: :func:`tool_use`, :func:`text`, :func:`refusal`, :func:`http_error`,
:func:`hang` (answers later than a client's timeout). ``latency_s`` delays every answer.

The server checks what the real API would reject (no credential, a forced tool that is not in ``tools``, a
``tool_result`` without its ``tool_use`` in the previous assistant turn) and answers 400/401 for it. It
records request bodies and the auth *scheme* (``bearer`` or ``x-api-key``), never a credential, and logs
nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FakeAnthropic",
    "FakeReply",
    "FakeRequest",
    "hang",
    "http_error",
    "refusal",
    "text",
    "tool_use",
]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake saw it.

    Attributes:
        index: 0-based arrival order.
        body: The parsed JSON body.
        auth_scheme: ``"bearer"``, ``"x-api-key"`` or ``None`` (the credential itself is never kept).
        received_at: ``time.monotonic()`` when it arrived (to check backoff and ``retry-after``).
    """

    index: int
    body: dict[str, Any]
    auth_scheme: str | None
    received_at: float = 0.0

    @property
    def forced_tool(self) -> str | None:
        """The tool named by ``tool_choice``, if one is forced."""
        choice = self.body.get("tool_choice") or {}
        return choice.get("name") if choice.get("type") == "tool" else None

    @property
    def last_user_text(self) -> str:
        """The text of the last user turn (string content or its text blocks)."""
        for msg in reversed(self.body.get("messages", [])):
            if msg.get("role") == "user":
                content = msg.get("content")
                if isinstance(content, str):
                    return content
                return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
        return ""


@dataclass(frozen=True)
class FakeReply:
    """What the fake answers: an HTTP status, a JSON body (or a builder of one), headers and a delay.

    ``body`` may be a callable ``(FakeRequest) -> dict`` so a reply can echo the request (tool name, model).
    """

    status: int = 200
    body: dict[str, Any] | Callable[[FakeRequest], dict[str, Any]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def _usage(req: FakeRequest, output: Any, usage: tuple[int, int] | None) -> dict[str, int]:
    if usage is not None:
        return {"input_tokens": usage[0], "output_tokens": usage[1]}
    # Deterministic stand-ins: about 4 characters per token.
    n_in = len(json.dumps(req.body.get("messages", []), sort_keys=True)) // 4 + 1
    n_out = len(json.dumps(output, sort_keys=True)) // 4 + 1
    return {"input_tokens": n_in, "output_tokens": n_out}


def _message(
    req: FakeRequest, content: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": f"msg_fake_{req.index:06d}",
        "type": "message",
        "role": "assistant",
        "model": req.body.get("model", "claude-fake"),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def tool_use(
    input: Any,
    *,
    name: str | None = None,
    usage: tuple[int, int] | None = None,
    preamble: str | None = None,
) -> FakeReply:
    """A ``tool_use`` answer with this ``input`` (valid or not: it is sent as given).

    Args:
        input: The tool input.
        name: The tool name (default: the tool the request forces).
        usage: ``(input_tokens, output_tokens)``; default a deterministic estimate.
        preamble: A text block before the call.
    """

    def build(req: FakeRequest) -> dict[str, Any]:
        tool = name or req.forced_tool or "tool"
        content: list[dict[str, Any]] = [{"type": "text", "text": preamble}] if preamble else []
        content.append({"type": "tool_use", "id": f"toolu_fake_{req.index:06d}", "name": tool, "input": input})
        return _message(req, content, "tool_use", _usage(req, input, usage))

    return FakeReply(body=build)


def text(reply: str, *, stop_reason: str = "end_turn", usage: tuple[int, int] | None = None) -> FakeReply:
    """A plain text answer (no tool call)."""

    def build(req: FakeRequest) -> dict[str, Any]:
        return _message(req, [{"type": "text", "text": reply}], stop_reason, _usage(req, reply, usage))

    return FakeReply(body=build)


def refusal(explanation: str = "I can't help with that.", *, category: str | None = None) -> FakeReply:
    """A refusal: ``stop_reason == "refusal"`` with ``stop_details``."""

    def build(req: FakeRequest) -> dict[str, Any]:
        msg = _message(req, [{"type": "text", "text": explanation}], "refusal", _usage(req, explanation, None))
        msg["stop_details"] = {"type": "refusal", "category": category, "explanation": explanation}
        return msg

    return FakeReply(body=build)


def http_error(
    status: int, message: str = "", *, retry_after: float | None = None, error_type: str | None = None
) -> FakeReply:
    """An API error: ``{"type": "error", "error": {...}}`` with the status (429, 500, 529...)."""
    kind = error_type or _ERROR_TYPES.get(status, "api_error")
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    body = {"type": "error", "error": {"type": kind, "message": message or f"fake {kind}"}}
    return FakeReply(status=status, body=body, headers=headers)


def hang(seconds: float = 5.0) -> FakeReply:
    """An answer that comes after ``seconds`` (longer than a client's timeout); cut short when the fake stops."""
    return FakeReply(status=200, body=text("too late").body, delay_s=seconds)


def _request_problem(body: Any) -> str | None:
    """What the real API would reject with a 400 (the checks a client bug would trip)."""
    if not isinstance(body, dict):
        return "body: expected a JSON object"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    tools = {t.get("name"): t for t in body.get("tools", []) if isinstance(t, dict)}
    for t in tools.values():
        if not isinstance(t.get("input_schema"), dict) or t["input_schema"].get("type") != "object":
            return f"tools.{t.get('name')}.input_schema: expected type 'object'"
    forced = (body.get("tool_choice") or {}).get("name")
    if forced is not None and forced not in tools:
        return f"tool_choice.name: tool '{forced}' is not in tools"
    previous_calls: set[str] = set()
    for i, msg in enumerate(body["messages"]):
        content = msg.get("content")
        blocks = content if isinstance(content, list) else []
        if msg.get("role") == "user":
            for block in blocks:
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in previous_calls:
                    return f"messages.{i}: tool_result for unknown tool_use_id {block.get('tool_use_id')!r}"
        previous_calls = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
        if any(b.get("type") == "text" and not b.get("text") for b in blocks):
            return f"messages.{i}: text content blocks must be non-empty"
    return None


class FakeAnthropic:
    """The fake server; a context manager that serves on ``127.0.0.1`` at a free port in a daemon thread.

    Args:
        script: A list of replies, one per request in arrival order, or a callable choosing the reply.
        latency_s: A delay added to every answer (for throughput benchmarks).
        expected_key: When set, a request whose credential differs gets a 401 (the credential is compared,
            never stored).

    Attributes:
        base_url: ``http://127.0.0.1:PORT`` (valid once started).
        requests: Every :class:`FakeRequest`, in arrival order.
        max_in_flight: The most requests it was answering at once.
    """

    def __init__(
        self,
        script: Sequence[FakeReply] | Callable[[FakeRequest], FakeReply],
        *,
        latency_s: float = 0.0,
        expected_key: str | None = None,
    ) -> None:
        self._script = script if callable(script) else list(script)
        self.latency_s = latency_s
        self._expected_key = expected_key
        self.requests: list[FakeRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def hits(self) -> int:
        """Requests received on ``/v1/messages``."""
        with self._lock:
            return len(self.requests)

    @property
    def base_url(self) -> str:
        """The URL to give the SDK (``base_url=`` or ``ANTHROPIC_BASE_URL``)."""
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started: use it as a context manager or call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeAnthropic:
        """Bind a free port and serve in a daemon thread."""
        handler = type("_Handler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        # A short poll interval: shutdown() waits for one poll, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-anthropic", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; pending delayed answers are cut short."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- called by the handler ---------------------------------------------------------------------------

    def _next(self, body: Any, auth_scheme: str | None) -> tuple[FakeRequest, FakeReply]:
        with self._lock:
            req = FakeRequest(len(self.requests), body if isinstance(body, dict) else {}, auth_scheme, time.monotonic())
            self.requests.append(req)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            script = self._script
            if callable(script):
                chosen = None
            elif req.index < len(script):
                chosen = script[req.index]
            else:
                chosen = http_error(400, f"fake_anthropic: script exhausted after {len(script)} replies")
        if chosen is None:
            chosen = script(req)  # outside the lock: a callable may be slow
        return req, chosen

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _check_auth(self, headers: Any) -> tuple[str | None, str | None]:
        """``(scheme, problem)``; the credential is compared here and dropped."""
        bearer = headers.get("authorization") or ""
        key = headers.get("x-api-key") or ""
        if bearer.lower().startswith("bearer ") and bearer[7:].strip():
            scheme, credential = "bearer", bearer[7:].strip()
        elif key:
            scheme, credential = "x-api-key", key
        else:
            return None, "missing credential: send x-api-key or Authorization: Bearer"
        if self._expected_key is not None and credential != self._expected_key:
            return scheme, "invalid credential"
        return scheme, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pooled connections expect
    # One buffered write per answer and no Nagle: headers and body sent apart would meet the client's
    # delayed ACK and add ~40 ms to every request, which would swamp latency benchmarks.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    fake: FakeAnthropic

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing (http.server would print every request line to stderr)."""

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_fake_{status}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): nothing to answer

    def do_POST(self) -> None:
        """Answer ``POST /v1/messages`` from the script."""
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].rstrip("/") != "/v1/messages":
            self._send(404, http_error(404, f"fake_anthropic: no route {self.path}").body)  # type: ignore[arg-type]
            return
        fake = self.fake
        scheme, auth_problem = fake._check_auth(self.headers)
        try:
            body = json.loads(raw or b"null")
        except json.JSONDecodeError:
            body = None
        req, reply = fake._next(body, scheme)
        try:
            if auth_problem:
                reply = http_error(401, auth_problem)
            elif problem := _request_problem(body):
                reply = http_error(400, problem)
            delay = fake.latency_s + reply.delay_s
            if delay > 0 and fake._stop.wait(delay):
                return  # stopping: drop the answer
            payload = reply.body(req) if callable(reply.body) else reply.body
            self._send(reply.status, payload, reply.headers)
        finally:
            fake._done()

    def do_GET(self) -> None:
        """Nothing but ``POST /v1/messages`` exists here."""
        self._send(404, http_error(404, f"fake_anthropic: no route {self.path}").body)  # type: ignore[arg-type]
