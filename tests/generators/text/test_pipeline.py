"""The whole text pipeline (Self-Instruct -> dedup -> Evol-Instruct -> critic) in shards, as the run loop will drive it.

Checks: a cached rerun makes no request and writes identical bytes; no finished request is repeated after a
failure; the API key appears in no output file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simgen.generators.text.critic import CriticFilter
from simgen.generators.text.dedup import dedup
from simgen.generators.text.evol_instruct import EvolInstruct
from simgen.generators.text.records import load_seeds, records_jsonl
from simgen.generators.text.self_instruct import SelfInstruct
from simgen.llm import LLMClient, LLMError, LLMSettings, cache_dir_for
from simgen.testing.fake_anthropic import FakeAnthropic, http_error


def run(out: Path, client: LLMClient, seed: int = 7, shards: int = 2) -> None:
    """Each stage's shards get generators spawned from one SeedSequence; records are committed per stage."""
    ss = np.random.SeedSequence(seed)
    stage_seq = ss.spawn(3)
    seeds = load_seeds()
    made = [
        SelfInstruct(requests_per_round=2).produce(seeds, np.random.default_rng(s), client, n=4)
        for s in stage_seq[0].spawn(shards)
    ]
    instructions = dedup([r for p in made for r in p.records], lambda r: r.instruction)
    blocks = np.array_split(np.arange(len(instructions.kept)), shards)
    evolved = [
        EvolInstruct(rounds=2).produce([instructions.kept[i] for i in b], np.random.default_rng(s), client)
        for b, s in zip(blocks, stage_seq[1].spawn(shards), strict=True)
    ]
    pool = [*instructions.kept, *(r for p in evolved for r in p.records)]
    judged = CriticFilter(threshold=3.0).produce(pool, np.random.default_rng(stage_seq[2]), client)
    out.mkdir(parents=True, exist_ok=True)
    (out / "records.jsonl").write_text(records_jsonl(judged.records))
    rejected = [x.as_dict() for p in [*made, *evolved, judged] for x in p.rejected]
    (out / "rejected.jsonl").write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in rejected))
    summary = {"llm": client.summary()["responses"], "dedup": instructions.counts, "critic": judged.counts}
    (out / "summary.json").write_text(json.dumps(summary, sort_keys=True, indent=1))


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.*")) if p.is_file()}


def test_cached_rerun_makes_no_request_and_writes_the_same_bytes(model, client_of, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeAnthropic(model) as server:
        llm = client_of(server, cache_dir_for(out))
        run(out, llm)
        first_hits = server.hits
    first = files(out)
    records = [json.loads(x) for x in first["records.jsonl"].decode().splitlines()]
    assert first_hits > 20 and len(records) > 8
    assert {r["generator"] for r in records} == {"text/self-instruct-v1", "text/evol-instruct-v1"}
    assert all(r["critic"]["passed"] and r["critic"]["mean"] >= 3.0 for r in records)
    assert max(r["generation"] for r in records) >= 2
    with FakeAnthropic([]) as server:  # any request would get a 400 and fail the run
        llm = client_of(server, cache_dir_for(out))
        run(out, llm)
        assert server.hits == 0
    assert files(out) == first
    assert llm.summary()["this_run"]["requests"] == 0 and llm.summary()["this_run"]["cache_hits"] == first_hits


def test_a_failed_run_resumes_without_repeating_a_finished_request(model, client_of, tmp_path: Path) -> None:
    out = tmp_path / "out"
    broken = type(model)()
    broken.plant["submit_rubric"] = lambda req: http_error(500, "critic down")
    with FakeAnthropic(broken) as server:
        with pytest.raises(LLMError, match="critic down"):
            run(out, client_of(server, cache_dir_for(out), max_retries=0))
        paid_before = [q.body for q in server.requests if q.forced_tool != "submit_rubric"]
    with FakeAnthropic(model) as server:
        run(out, client_of(server, cache_dir_for(out)))
        repeated = [q.body for q in server.requests if q.body in paid_before]
        tools = {q.forced_tool for q in server.requests}
    assert paid_before and repeated == [] and tools == {"submit_rubric"}
    with FakeAnthropic(model) as server:  # and a clean run from scratch writes the same files
        run(tmp_path / "fresh", client_of(server, cache_dir_for(tmp_path / "fresh")))
    assert files(tmp_path / "fresh") == files(out)


def test_the_key_appears_in_no_output_file(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    key = "sk-ant-api03-TEXTLEAKGREP-5e4d3c2b1a09f8e7d6c5"
    out = tmp_path / "out"
    with FakeAnthropic(model, expected_key=key) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", key)  # the key comes from the environment only
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        llm = LLMClient(LLMSettings(model="claude-fake", concurrency=4), cache_dir=cache_dir_for(out))
        run(out, llm)
        assert server.hits > 20 and all(q.auth_scheme for q in server.requests)  # the key was really sent
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) > 20  # records, rejections, summary and the cache entries
    leaks = [str(p) for p in written if key.encode() in p.read_bytes()]
    captured = capfd.readouterr()
    assert leaks == [] and key not in captured.out + captured.err
