"""Text generators against the fake Messages API with a realistic latency: throughput, cache, dedup, diversity.

Everything runs offline: the fake server (simgen.testing.fake_anthropic) answers through the real anthropic SDK
over HTTP on 127.0.0.1, with a scripted model that derives each answer from the request (so a rerun is cached).

  (a) throughput: the critic over --requests records (one request each) at --concurrency with --latency per
      request. Target: >= 0.8 x concurrency / latency requests/s.
  (b) cached rerun: the same call again on the same cache folder (best of 5). Target: >= 50x faster than (a),
      and no request.
  (c) dedup: --dedup-records instruction-like texts with planted near-duplicates; exact + ROUGE-L > 0.7 with the
      MinHash LSH prefilter. Target: < 30 s. Recall of the prefilter against brute force on --recall-records.
  (d) diversity before and after the critic filter: distinct-2 and Self-BLEU of a Self-Instruct + Evol-Instruct
      run, judged by a scripted critic that scores repetitive answers low (a stand-in: the numbers show the
      validators and the filter at work, not a real model's judgement).
  (e) the same critic as a dataset through the run loop (simgen.generators.text.run, what `simgen text critic`
      runs): throughput with units committed to disk, then every unit redone from the response cache (a resume
      after the units were deleted): the loop's own overhead shows in the ratio.

Usage: python benchmarks/text.py [--requests 96] [--concurrency 8] [--latency 0.2] [--dedup-records 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from simgen.generators.text.critic import CriticFilter
from simgen.generators.text.dedup import candidate_recall, dedup
from simgen.generators.text.evol_instruct import EvolInstruct
from simgen.generators.text.records import TextRecord, load_seeds
from simgen.generators.text.self_instruct import SelfInstruct
from simgen.llm import LLMClient, LLMSettings
from simgen.testing.fake_anthropic import FakeAnthropic, FakeReply, FakeRequest, tool_use
from simgen.validators.text import distinct_n, self_bleu


def _split(text: str) -> list[str]:
    return text.split()


VERBS = _split("Explain Describe Compare List Summarize Estimate Design Plan Evaluate Suggest Outline Critique")
NOUNS = _split(
    "robot gripper camera lidar dataset label sensor arm warehouse pallet conveyor trajectory controller "
    "battery motor wheel joint mug shelf bin tray shadow noise model metric planner encoder"
)
ADJ = _split("small large fast slow noisy clean shiny transparent heavy cheap robust fragile mobile fixed outdoor")
FILL = _split("the a of for in on with and to how why what which when that this each every")
KEY = "sk-ant-bench-0000000000000000"


def _rng(*parts: Any) -> np.random.Generator:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "big"))


def _sentence(g: np.random.Generator, n: int) -> str:
    words = [str(g.choice(FILL)) if g.random() < 0.35 else str(g.choice(NOUNS + ADJ)) for _ in range(n)]
    return " ".join(words)


def scripted(req: FakeRequest) -> FakeReply:
    """A stand-in model: answers each forced tool from the prompt (deterministic, varied)."""
    text = req.body["messages"][0]["content"]
    tool = req.forced_tool
    g = _rng(tool, text)
    if tool == "submit_proposed_tasks":
        n = int(re.search(r"Write (\d+) new tasks", text).group(1))
        tasks = [{"instruction": f"{g.choice(VERBS)} {_sentence(g, int(g.integers(6, 16)))}."} for _ in range(n)]
        return tool_use({"tasks": tasks})
    if tool == "submit_instances":
        # A third of the answers are boilerplate: the scripted critic marks them down.
        out = (
            "This is a general answer that applies to many tasks in the same way."
            if g.random() < 0.33
            else _sentence(g, int(g.integers(15, 40))) + "."
        )
        return tool_use({"instances": [{"input": "", "output": out}]})
    if tool == "submit_evolved_prompt":
        given = text.split("#The Given Prompt#:\n", 1)[1].split("\n\nSubmit", 1)[0]
        return tool_use({"prompt": f"{given} Also address the {g.choice(ADJ)} {g.choice(NOUNS)}."})
    if tool == "submit_response":
        out = (
            "This is a general answer that applies to many tasks in the same way."
            if g.random() < 0.33
            else _sentence(g, int(g.integers(20, 50))) + "."
        )
        return tool_use({"response": out})
    if tool == "submit_judgement":
        return tool_use({"equal": False, "reason": "More specific."})
    if tool == "submit_rubric":
        answer = text.split("#Answer#:\n", 1)[1]
        boiler = "general answer that applies" in answer
        score = 2 if boiler else int(g.integers(3, 6))
        return tool_use(
            {
                a: {"score": score, "reason": "scripted"}
                for a in ("helpfulness", "honesty", "instruction_following", "truthfulness")
            }
        )
    raise AssertionError(f"no scripted answer for {tool}")


def client(server: Any, cache: Path, concurrency: int) -> LLMClient:
    settings = LLMSettings(model="claude-fake", concurrency=concurrency, timeout_s=30, max_retries=2)
    return LLMClient(settings, cache_dir=cache, api_key=KEY, base_url=server.base_url)


def records_to_judge(n: int) -> list[TextRecord]:
    g = np.random.default_rng(0)
    return [
        TextRecord(
            id=f"bench-{i:05d}",
            instruction=f"{g.choice(VERBS)} {_sentence(g, 10)}.",
            output=_sentence(g, 30) + ".",
            operation="self-instruct/propose",
            origin="synthetic",
            generation=1,
        )
        for i in range(n)
    ]


def warm_up(llm: LLMClient) -> None:
    """One untimed request: the SDK's first request builds its HTTP client and connection pool."""
    record = TextRecord(id="warm-up", instruction="Warm up.", output="Ready.", operation="seed", origin="real",
                        generation=0)  # fmt: skip
    CriticFilter().judge([record], llm)


class _ServerProcess:
    """The fake server in a child process, as a real endpoint is: its CPU time does not compete with the client's
    threads for this process's GIL. ``hits`` and ``max_in_flight`` are read back when it stops."""

    def __init__(self, latency: float) -> None:
        import multiprocessing as mp

        self._ctx = mp.get_context("fork")
        self._parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=self._serve, args=(child, latency), daemon=True)
        self.hits = self.max_in_flight = 0

    @staticmethod
    def _serve(conn: Any, latency: float) -> None:
        with FakeAnthropic(scripted, latency_s=latency) as server:
            conn.send(server.base_url)
            conn.recv()  # wait for "stop"
            conn.send((server.hits, server.max_in_flight))

    def __enter__(self) -> _ServerProcess:
        self._proc.start()
        self.base_url = self._parent.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._parent.send("stop")
        self.hits, self.max_in_flight = self._parent.recv()
        self._proc.join(timeout=10)


def bench_throughput(args: argparse.Namespace, tmp: Path) -> None:
    records = records_to_judge(args.requests)
    cache = tmp / "cache-throughput"
    if args.server_process:
        with _ServerProcess(args.latency) as proc:
            llm = client(proc, tmp / "cache-process", args.concurrency)
            warm_up(llm)
            t0 = time.perf_counter()
            CriticFilter().judge(records, llm)
            elapsed = time.perf_counter() - t0
        rate = args.requests / elapsed
        target = 0.8 * args.concurrency / args.latency
        print(
            f"(a') throughput with the fake server in its own process: {elapsed:.2f} s = {rate:.1f} req/s "
            f"(target >= {target:.1f}), server hits {proc.hits - 1}, max in flight {proc.max_in_flight} -> "
            f"{'PASS' if rate >= target else 'FAIL'}"
        )
    with FakeAnthropic(scripted, latency_s=args.latency) as server:
        llm = client(server, cache, args.concurrency)
        warm_up(llm)
        hits_before = server.hits
        t0 = time.perf_counter()
        CriticFilter().judge(records, llm)
        t_first = time.perf_counter() - t0
        hits = server.hits - hits_before
        in_flight = server.max_in_flight
    rate = args.requests / t_first
    target = 0.8 * args.concurrency / args.latency
    print(
        f"(a) throughput: {args.requests} requests at concurrency {args.concurrency}, latency {args.latency:g} s: "
        f"{t_first:.2f} s = {rate:.1f} req/s (target >= {target:.1f}; ideal {args.concurrency / args.latency:.1f}), "
        f"server hits {hits}, max in flight {in_flight} -> {'PASS' if rate >= target else 'FAIL'}"
    )
    with FakeAnthropic(scripted, latency_s=args.latency) as server:
        llm = client(server, cache, args.concurrency)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            CriticFilter().judge(records, llm)
            best = min(best, time.perf_counter() - t0)
        hits = server.hits
    ratio = t_first / best
    print(
        f"(b) cached rerun: {best * 1000:.1f} ms (best of 5), server hits {hits}, {ratio:.0f}x faster "
        f"(target >= 50x) -> {'PASS' if ratio >= 50 and hits == 0 else 'FAIL'}"
    )


def bench_run_loop(args: argparse.Namespace, tmp: Path) -> None:
    import os
    import shutil

    from simgen.generators.text.run import LLMOptions, TextJob, run_text

    inputs = tmp / "to-judge.jsonl"
    inputs.write_text("".join(r.line() + "\n" for r in records_to_judge(args.requests)))
    out = tmp / "run-loop"
    job = TextJob(method="critic", inputs=str(inputs), params={"threshold": 3.0})
    llm = LLMOptions(model="claude-fake", concurrency=args.concurrency, timeout_s=30, max_retries=2)
    with FakeAnthropic(scripted, latency_s=args.latency) as server:
        os.environ.update(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.base_url)
        warm_up(client(server, tmp / "cache-warm-up", 1))  # imports the SDK, as (a) does, outside the timing
        hits0 = server.hits
        first = run_text(job, out, llm=llm)
        hits = server.hits - hits0
        shutil.rmtree(out / "units")
        shutil.rmtree(out / ".simgen" / "shards")
        again = run_text(job, out, llm=llm, resume=True)
        cached_hits = server.hits - hits - hits0
    rate = args.requests / first.seconds
    target = 0.8 * args.concurrency / args.latency
    print(
        f"(e) run loop: critic over {args.requests} records in {first.n_records} units: {first.seconds:.2f} s = "
        f"{rate:.1f} req/s (target >= {target:.1f}), server hits {hits} -> {'PASS' if rate >= target else 'FAIL'}; "
        f"every unit redone from the cache: {again.seconds * 1000:.0f} ms, server hits {cached_hits}, "
        f"{first.seconds / again.seconds:.0f}x faster"
    )


def dedup_corpus(n: int, seed: int = 0, dup_rate: float = 0.05) -> list[str]:
    g = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(n):
        if out and g.random() < dup_rate:
            base = out[int(g.integers(len(out)))].split()
            for _ in range(int(g.integers(1, 4))):
                base[int(g.integers(len(base)))] = str(g.choice(ADJ))
            out.append(" ".join(base))
        else:
            out.append(f"{g.choice(VERBS)} {_sentence(g, int(g.integers(8, 30)))}.")
    return out


def bench_dedup(args: argparse.Namespace) -> None:
    texts = dedup_corpus(args.dedup_records)
    t0 = time.perf_counter()
    result = dedup(texts)
    elapsed = time.perf_counter() - t0
    s = result.stats
    print(
        f"(c) dedup of {len(texts)} texts: {elapsed:.1f} s (target < 30 s) -> {'PASS' if elapsed < 30 else 'FAIL'}; "
        f"exact {s['exact']}, near {s['near']}, kept {s['kept']}; LSH {s['bands']}x{s['rows']} of {s['num_perm']} "
        f"permutations, {s['candidates']} candidate pairs, {s['scored']} LCS computed; "
        f"P(candidate) at the Jaccard bound {s['recall_at_bound']:.4f}"
    )
    sub = texts[: args.recall_records]
    t0 = time.perf_counter()
    recall = candidate_recall(sub, 0.7)
    t_brute = time.perf_counter() - t0
    fast, slow = dedup(sub), dedup(sub, brute_force=True)
    same = fast.kept_index == slow.kept_index
    print(
        f"    prefilter recall vs brute force on {len(sub)} texts: {recall['found']}/{recall['pairs']} pairs above 0.7 "
        f"proposed (recall {recall['recall']:.4f}; {t_brute:.1f} s); greedy dedup keeps "
        f"{'the same' if same else 'DIFFERENT'} records as brute force ({len(fast.kept)} vs {len(slow.kept)})"
    )


def bench_diversity(args: argparse.Namespace, tmp: Path) -> None:
    with FakeAnthropic(scripted) as server:
        llm = client(server, tmp / "cache-diversity", 8)
        si = SelfInstruct(requests_per_round=8).produce(load_seeds(), np.random.default_rng(1), llm, n=args.pipeline_n)
        evo = EvolInstruct(rounds=1).produce(si.records, np.random.default_rng(2), llm)
        pool = [*si.records, *evo.records]
        judged = CriticFilter(threshold=3.0).produce(pool, np.random.default_rng(3), llm)
        hits = server.hits

    def measure(rs: list[TextRecord]) -> str:
        texts = [r.text("all") for r in rs]
        return (
            f"n={len(texts)}, distinct-2 {distinct_n(texts, 2):.3f}, "
            f"Self-BLEU {self_bleu(texts, rng=np.random.default_rng(0), max_texts=2000):.3f}"
        )

    print(
        f"(d) Self-Instruct ({len(si.records)}) + Evol-Instruct ({len(evo.records)}) with {hits} requests; "
        f"scripted critic, threshold 3.0:"
    )
    print(f"    before the critic: {measure(pool)}")
    print(f"    after the critic:  {measure(judged.records)}  (dropped {judged.counts})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--dedup-records", type=int, default=10_000)
    parser.add_argument("--recall-records", type=int, default=1500)
    parser.add_argument("--pipeline-n", type=int, default=150)
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "dedup", "diversity", "run-loop"])
    parser.add_argument("--server-process", action="store_true", help="also measure with the server in a child process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="simgen-bench-text-") as tmp:
        if "throughput" not in args.skip:
            bench_throughput(args, Path(tmp))
        if "dedup" not in args.skip:
            bench_dedup(args)
        if "diversity" not in args.skip:
            bench_diversity(args, Path(tmp))
        if "run-loop" not in args.skip:
            bench_run_loop(args, Path(tmp))


if __name__ == "__main__":
    main()
