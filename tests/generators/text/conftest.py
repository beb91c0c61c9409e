"""A scripted stand-in for the model behind the fake Messages API, and clients wired to it.

The fake server (simgen.testing.fake_anthropic) answers through the real SDK over HTTP; ``ScriptedModel`` decides
the answers from the request alone (the forced tool and the prompt), so concurrent requests get the same answer
whatever their arrival order, and a rerun of the same requests gets the same answers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("anthropic", reason="the [llm] extra is not installed")
pytest.importorskip("rouge_score", reason="the [text] extra is not installed")
pytest.importorskip("datasketch", reason="the [text] extra is not installed")

from simgen.llm import LLMClient, LLMSettings
from simgen.testing.fake_anthropic import FakeAnthropic, FakeReply, FakeRequest, tool_use

KEY = "sk-ant-api03-SIMGENTEXTKEY-9d8c7b6a5f4e3d2c"

VERBS = ["Explain", "Describe", "Compare", "List", "Summarize", "Estimate", "Design", "Plan", "Evaluate", "Suggest"]
TOPICS = [
    "a warehouse robot",
    "a depth camera",
    "a labelled dataset",
    "a robot gripper",
    "an object detector",
    "a conveyor belt",
    "a mobile base",
    "a lidar scan",
    "a training split",
    "a pick-and-place cell",
    "a safety zone",
    "a calibration target",
    "a battery pack",
    "a motion planner",
    "a data pipeline",
]
ASPECTS = [
    "cost",
    "failure modes",
    "accuracy",
    "speed",
    "maintenance",
    "energy use",
    "safety",
    "trade-offs",
    "limitations",
    "testing",
    "latency",
    "noise",
]
AUDIENCES = [
    "for a new engineer",
    "for a manager",
    "in three sentences",
    "with an example",
    "step by step",
    "as a checklist",
    "for a student",
    "in plain words",
]


def digest_rng(*parts: Any) -> np.random.Generator:
    """A generator seeded by the content of a request: the same prompt gets the same answer."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "big"))


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start) + len(start)
    j = text.index(end, i) if end in text[i:] else len(text)
    return text[i:j].strip()


class ScriptedModel:
    """Answers each forced tool from the prompt; ``plant[tool]`` overrides one tool's answer.

    ``plant[tool]`` is a callable ``(FakeRequest) -> FakeReply | None`` (None falls back to the default answer).
    ``bad_tasks`` makes proposals include one planted task per filter reason.
    """

    def __init__(self, *, bad_tasks: bool = True) -> None:
        self.plant: dict[str, Callable[[FakeRequest], FakeReply | None]] = {}
        self.bad_tasks = bad_tasks
        self.calls: dict[str, int] = {}

    def __call__(self, req: FakeRequest) -> FakeReply:
        tool = req.forced_tool or ""
        self.calls[tool] = self.calls.get(tool, 0) + 1
        planted = self.plant.get(tool)
        if planted is not None:
            reply = planted(req)
            if reply is not None:
                return reply
        text = first_user_text(req)
        answer = getattr(self, tool.removeprefix("submit_"), None)
        if answer is None:
            raise AssertionError(f"scripted model: no answer for tool {tool!r}")
        return tool_use(answer(text, req))

    def proposed_tasks(self, text: str, req: FakeRequest) -> dict[str, Any]:
        n = int(re.search(r"Write (\d+) new tasks", text).group(1))
        g = digest_rng(text)
        tasks = []
        for _ in range(n):
            inst = f"{g.choice(VERBS)} the {g.choice(ASPECTS)} of {g.choice(TOPICS)} {g.choice(AUDIENCES)}."
            tasks.append({"instruction": inst, "is_classification": bool(g.random() < 0.2)})
        if self.bad_tasks:
            examples = re.findall(r"^\d+\. (.*)$", text, flags=re.M)
            tasks[-5:] = [
                {"instruction": "Draw a map of the robot cell and its safety zones."},  # keyword
                {"instruction": "Sort these."},  # too short
                {"instruction": examples[0]},  # a copy of an in-context task: ROUGE-L 1.0
                {"instruction": "- List three sensors for a robot arm."},  # punctuation first
                {"instruction": "Écrivez une phrase sur les robots industriels modernes."},  # not English
            ]
        return {"tasks": tasks[: max(n, 5)]}

    def instances(self, text: str, req: FakeRequest) -> dict[str, Any]:
        task = _between(text, "Task: ", "\n\nSubmit")
        g = digest_rng("instance", task)
        if "classification task" in text:
            return {
                "instances": [{"input": f"A case about {g.choice(TOPICS)}.", "output": str(g.choice(["yes", "no"]))}]
            }
        words = " ".join(g.choice(ASPECTS) for _ in range(int(g.integers(8, 20))))
        return {"instances": [{"input": "", "output": f"Here is an answer about {task[:40].lower()}: {words}."}]}

    def evolved_prompt(self, text: str, req: FakeRequest) -> dict[str, Any]:
        given = _between(text, "#The Given Prompt#:\n", "\n\nSubmit")
        g = digest_rng("evolve", text)
        if "Act as a prompt creator" in text:
            return {"prompt": f"{g.choice(VERBS)} the rarely discussed {g.choice(ASPECTS)} of {g.choice(TOPICS)}."}
        extra = f" Also consider {g.choice(ASPECTS)} and {g.choice(ASPECTS)} for {g.choice(TOPICS)}."
        return {"prompt": given + extra}

    def response(self, text: str, req: FakeRequest) -> dict[str, Any]:
        g = digest_rng("respond", text)
        body = " ".join(g.choice(ASPECTS + TOPICS) for _ in range(int(g.integers(20, 40))))
        return {"response": f"A careful answer: {body}."}

    def judgement(self, text: str, req: FakeRequest) -> dict[str, Any]:
        return {"equal": False, "reason": "The second adds a requirement."}

    def rubric(self, text: str, req: FakeRequest) -> dict[str, Any]:
        g = digest_rng("critic", text)
        return {
            a: {"score": int(g.integers(2, 6)), "reason": f"{a} looks fine."}
            for a in ("helpfulness", "honesty", "instruction_following", "truthfulness")
        }

    def caption(self, text: str, req: FakeRequest) -> dict[str, Any]:
        facts = json.loads(_between(text, "Facts (JSON):\n", "\n\nA plain description"))
        parts = [f"{n} {c}" for c, n in facts["objects"].items()]
        return {"caption": "Photo showing " + ", ".join(parts) + "."}


def first_user_text(req: FakeRequest) -> str:
    """The first user turn's text (repair rounds append turns; the task is in the first)."""
    content = req.body["messages"][0]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No ambient credential, endpoint or proxy reaches a test."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CONFIG_DIR",
        "ANTHROPIC_LOG",
        "ANTHROPIC_CUSTOM_HEADERS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


def make_client(server: FakeAnthropic, cache: Path | None = None, **kw: Any) -> LLMClient:
    """A client of the fake server with fast retries."""
    base: dict[str, Any] = {
        "model": "claude-fake",
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 5.0,
        "max_retries": 2,
        "concurrency": 4,
    }
    base.update(kw)
    return LLMClient(LLMSettings(**base), cache_dir=cache, api_key=KEY, base_url=server.base_url)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def model() -> ScriptedModel:
    """A fresh scripted model (planted tasks on)."""
    return ScriptedModel()


@pytest.fixture
def client_of() -> Callable[..., LLMClient]:
    """``client_of(server, cache=None, **settings)``: an LLMClient of a fake server."""
    return make_client


@pytest.fixture
def api_key() -> str:
    """The distinctive key the tests use (grep for it in outputs)."""
    return KEY
