"""The fake Messages API itself: auth schemes, the checks the real API makes, script handling, stopping."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from simgen.testing.fake_anthropic import FakeAnthropic, hang, http_error, tool_use

TOOL = {"name": "submit", "description": "d", "input_schema": {"type": "object", "properties": {}}}


def post(url: str, body: Any, headers: dict[str, str] | None = None, path: str = "/v1/messages") -> tuple[int, dict]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "claude-fake", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **kw}


def test_accepts_x_api_key_and_bearer_and_records_only_the_scheme() -> None:
    with FakeAnthropic([tool_use({"a": 1})] * 2) as server:
        s1, msg = post(
            server.base_url,
            body(tools=[TOOL], tool_choice={"type": "tool", "name": "submit"}),
            {"x-api-key": "k1-secret"},
        )
        s2, _ = post(server.base_url, body(), {"authorization": "Bearer k2-secret"})
    assert (s1, s2) == (200, 200)
    assert msg["type"] == "message" and msg["stop_reason"] == "tool_use"
    assert msg["content"][0] == {"type": "tool_use", "id": "toolu_fake_000000", "name": "submit", "input": {"a": 1}}
    assert msg["usage"]["input_tokens"] > 0 and msg["model"] == "claude-fake"
    assert [r.auth_scheme for r in server.requests] == ["x-api-key", "bearer"]
    assert "secret" not in repr(server.requests) and "secret" not in repr(vars(server))


def test_rejects_what_the_real_api_rejects() -> None:
    with FakeAnthropic([tool_use({})] * 5, expected_key="right") as server:
        auth = {"x-api-key": "right"}
        assert post(server.base_url, body())[0] == 401
        assert post(server.base_url, body(), {"x-api-key": "wrong"})[0] == 401
        status, err = post(server.base_url, body(tool_choice={"type": "tool", "name": "nope"}), auth)
        assert status == 400 and "not in tools" in err["error"]["message"]
        orphan = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "e"}]}]
        status, err = post(server.base_url, body(messages=orphan), auth)
        assert status == 400 and "unknown tool_use_id" in err["error"]["message"]
        assert post(server.base_url, {"model": "m"}, auth)[0] == 400
        assert post(server.base_url, body(), auth, path="/v1/other")[0] == 404


def test_exhausted_script_answers_400_and_errors_carry_retry_after() -> None:
    with FakeAnthropic([http_error(429, "slow", retry_after=1.5)]) as server:
        req = urllib.request.Request(
            server.base_url + "/v1/messages", data=json.dumps(body()).encode(), headers={"x-api-key": "k"}
        )
        try:
            urllib.request.urlopen(req, timeout=5)
        except urllib.error.HTTPError as err:
            assert err.code == 429 and err.headers["retry-after"] == "1.5"
            assert json.loads(err.read())["error"] == {"type": "rate_limit_error", "message": "slow"}
        status, err2 = post(server.base_url, body(), {"x-api-key": "k"})
    assert status == 400 and "script exhausted after 1" in err2["error"]["message"]
    assert server.hits == 2


def test_stop_cuts_a_hanging_answer_short() -> None:
    server = FakeAnthropic([hang(30)]).start()
    req = urllib.request.Request(
        server.base_url + "/v1/messages", data=json.dumps(body()).encode(), headers={"x-api-key": "k"}
    )
    caller = threading.Thread(target=lambda: _swallow(lambda: urllib.request.urlopen(req, timeout=10)), daemon=True)
    caller.start()
    while server.hits == 0:
        time.sleep(0.01)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 2


def _swallow(fn: Any) -> None:
    with contextlib.suppress(Exception):
        fn()
