"""``simgen ideate``: propose edge-case scenarios, validate and repair them, render probes, criticise, keep the best.

The loop (issue 12, point 6):

1. **Propose.** With ``ANTHROPIC_API_KEY`` set, one Messages API request per proposal through
   :class:`~simgen.llm.LLMClient` (tool use; the tool's ``input_schema`` is the JSON Schema of
   :class:`~simgen.scenarios.ideation.proposal.ScenarioProposal`). Without a key, the offline combinatorial
   ideator (:mod:`simgen.scenarios.ideation.library`).
2. **Validate, then repair.** Each proposal is loaded as a scenario (:func:`check_proposal`); a
   :class:`~simgen.errors.SpecError` or :class:`~simgen.errors.AssetError` goes back to the model as the tool
   result, for up to ``repairs`` rounds.
3. **Drop near-duplicates** of proposals already kept (:func:`proposal_distance`).
4. **Simulate and criticise.** Probe frames at low resolution inside ``OUT/.simgen/probes`` (removed after),
   the automatic critic, and optionally the vision critic.
5. **Write** the kept scenarios (``OUT/<name>.yaml``, each with a header recording its origin),
   ``OUT/ideation.jsonl`` (one line per request, then a summary line), and return the summary.

Everything the model returns is data: validated by pydantic, bounded, loaded like a file a person wrote, and
never executed. Files are written inside ``OUT`` only. The API key is read by the SDK from the environment and
is in no output. Responses are cached in ``OUT/.simgen/llm-cache``, so a rerun makes no request and writes the
same files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simgen.errors import SimgenError
from simgen.scenarios.ideation.focus import DEFAULT_CONDITIONS, Focus, read_focus
from simgen.scenarios.ideation.library import OFFLINE_MODEL, offline_proposals
from simgen.scenarios.ideation.probes import ProbeResult, Verdict, auto_critic, render_probe, spec_only, vision_critic
from simgen.scenarios.ideation.proposal import (
    ScenarioProposal,
    check_proposal,
    proposal_distance,
    proposal_features,
    scenario_yaml,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL", "HEADER", "IdeateConfig", "IdeationResult", "ideate"]

DEFAULT_MODEL = "claude-sonnet-4-5"
#: The first line of every scenario file ``simgen ideate`` writes (a rerun replaces only files starting with it).
HEADER = "# simgen ideate:"
JSONL = "ideation.jsonl"
_KEY_ENVS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
#: What the proposals of one run are told to focus on, in turn, when no report says otherwise.
HINTS = (*DEFAULT_CONDITIONS, "dense clutter", "unusual object poses", "look-alike distractors", "tiny distant objects")

SYSTEM = """You design edge-case scenarios for simgen, a synthetic data engine for perception models.
A scenario is a base scene spec plus a patch of it, and the constraints (`require`) that every rendered frame must
meet, checked on the frame's labels. Propose ONE scenario by calling the tool. Rules:
- The patch edits fields of the base spec shown below. Keys may be dotted paths (`light.intensity`,
  `camera.look_at.elevation_deg`, `objects[name=clutter].count`, `objects[0].region.size`). A list is replaced whole.
  A value may be a number or a distribution such as {kind: uniform, low: 2, high: 8}.
- Do not change the camera resolution, outputs, asset_roots, backend or frames_per_scene. Use only assets already in
  the base spec. At most 64 objects per scene.
- `require` constraints use a closed vocabulary: stat is count (of selected objects), min/max/mean of an attribute
  (`of`: visible_px, visibility, truncation, box_w, box_h, box_area, distance, border_distance), or the image's
  brightness / contrast (luma in [0, 1]); compare with ge/gt/le/lt/eq. `select` filters objects by category, tag
  and attribute ranges. Reading visibility needs `labels.visibility: true` in the patch.
- The constraints must be met often (most renders), and the scenario must really differ from the base spec.
Pixel values refer to the base spec's camera resolution."""


@dataclass(frozen=True)
class IdeateConfig:
    """Settings of one ideation run (the CLI's options).

    Args:
        goal: What to find failure cases for.
        n: Proposals to request.
        model: The Anthropic model.
        repairs: Repair rounds per proposal.
        probe_frames: Probe frames per proposal (and for the base spec).
        probe_width: Probe width in pixels; the height keeps the base camera's aspect ratio.
        vision_critic: Ask the model to score each preview (needs a key).
        min_score: Lowest vision score kept.
        from_report: A ``simgen validate`` report.json to aim at.
        seed: Seed of the probes and of the offline ideator.
        asset_roots: Extra folders assets may come from.
        min_acceptance: Lowest probe acceptance rate kept.
        duplicate_distance: Proposals closer than this to a kept one are duplicates.
        offline: Force the offline ideator (True), the LLM (False), or choose by the key (None).
        max_retries: Retries of a failed request (429, 5xx, timeouts).
        timeout_s: Per-attempt HTTP timeout.
        concurrency: Requests in flight at once.
        max_requests: Paid requests this run may make (None: no limit).
    """

    goal: str = ""
    n: int = 12
    model: str = DEFAULT_MODEL
    repairs: int = 2
    probe_frames: int = 4
    probe_width: int = 96
    vision_critic: bool = False
    min_score: int = 5
    from_report: str | Path | None = None
    seed: int = 0
    asset_roots: tuple[str | Path, ...] = ()
    min_acceptance: float = 0.1
    duplicate_distance: float = 0.25
    offline: bool | None = None
    max_retries: int = 4
    timeout_s: float = 120.0
    concurrency: int = 4
    max_requests: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "n": 1 <= self.n <= 200,
            "repairs": 0 <= self.repairs <= 10,
            "probe_frames": 1 <= self.probe_frames <= 64,
            "probe_width": 16 <= self.probe_width <= 1024,
            "min_score": 0 <= self.min_score <= 10,
            "min_acceptance": 0.0 <= self.min_acceptance <= 1.0,
            "duplicate_distance": 0.0 <= self.duplicate_distance <= 1.0,
            "max_retries": 0 <= self.max_retries <= 20,
            "timeout_s": self.timeout_s > 0,
            "concurrency": 1 <= self.concurrency <= 64,
        }
        for name, ok in checks.items():
            if not ok:
                raise SimgenError(f"ideate: invalid {name}={getattr(self, name)!r}")


@dataclass
class IdeationResult:
    """What a run wrote and counted.

    Attributes:
        out: The output folder.
        mode: ``llm`` or ``offline``.
        model: The model (or the offline ideator's id).
        accepted: The scenario files written, in request order.
        summary: proposed, valid, valid_after_repair, accepted, duplicates, and the rejections by stage.
        records: The request lines of ``ideation.jsonl``.
        notes: One-line remarks for the user (the offline mode, skipped library levels, report notes).
        usage: Token accounting of this run (not part of the outputs: it differs between a run and a rerun).
        focus: What ``--from-report`` aimed at (weak classes, conditions, findings), if given.
    """

    out: Path
    mode: str
    model: str
    accepted: list[Path] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    focus: dict[str, Any] | None = None


@dataclass
class _Candidate:
    index: int
    record: dict[str, Any]
    proposal: ScenarioProposal | None = None
    data: dict[str, Any] | None = None


def _one_line(text: Any, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scrub(text: str) -> str:
    for name in _KEY_ENVS:
        secret = os.environ.get(name)
        if secret and len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    return text


def _load_base(base_spec: str | Path, roots: Sequence[str | Path]) -> tuple[dict[str, Any], Path, list[str]]:
    from simgen.scenarios import load_scenario
    from simgen.spec import read_spec_file
    from simgen.spec.loader import iter_file_assets

    loaded = load_scenario(base_spec, asset_roots=roots)
    relative = [
        f"{where}: {ref}"
        for where, ref in iter_file_assets(loaded.base.spec)
        if not ref.startswith("pybullet_data:") and not Path(ref).expanduser().is_absolute()
    ]
    if relative or loaded.base.spec.asset_roots:
        what = relative[0] if relative else "asset_roots"
        raise SimgenError(
            f"{base_spec}: ideate writes scenarios into another folder, so the base spec's assets must be "
            f"pybullet_data: references or absolute paths inside --asset-root folders ({what})"
        )
    return read_spec_file(base_spec), Path(base_spec).resolve().parent, loaded.categories()


def _clear_previous(out: Path) -> None:
    """Remove the scenario files an earlier ``simgen ideate`` wrote here (recognised by their first line)."""
    for path in sorted(out.glob("*.yaml")):
        try:
            with path.open(encoding="utf-8") as fh:
                first = fh.readline()
        except (OSError, UnicodeDecodeError):
            continue
        if first.startswith(HEADER):
            path.unlink()


def _prompt(base_yaml: str, goal: str, focus: Focus | None, categories: Sequence[str], i: int, n: int) -> str:
    hints = focus.conditions if focus else HINTS
    parts = [
        f"Goal: {goal or 'failure cases of an object detector trained on this scene'}",
        f"Base scene spec (YAML):\n{base_yaml}",
        f"Object categories: {', '.join(categories)}.",
    ]
    if focus is not None:
        parts.append(focus.goal_text())
    parts.append(
        f"This is proposal {i + 1} of {n}; make it about: {hints[i % len(hints)]}. "
        "Give it a short lower-case name, a one-paragraph rationale, the patch and the require constraints."
    )
    return "\n\n".join(parts)


def _llm_candidates(
    client: Any,
    base: Mapping[str, Any],
    categories: Sequence[str],
    config: IdeateConfig,
    focus: Focus | None,
    check: Callable[[ScenarioProposal], None],
) -> list[_Candidate]:
    from simgen.llm import StructuredRequest

    raw = spec_only(base)
    base_yaml = scenario_yaml(raw)[:12000]
    goal = _one_line(_scrub(config.goal), 1000)
    requests = [
        StructuredRequest(
            prompt=_prompt(base_yaml, goal, focus, categories, i, config.n),
            output=ScenarioProposal,
            system=SYSTEM,
            tool_name="propose_scenario",
            salt=f"simgen-ideate:{config.seed}:{i}",
            check=check,
        )
        for i in range(config.n)
    ]
    results = client.structured_many(requests)
    out = []
    for i, result in enumerate(results):
        rec = result.record()
        record = {
            "request": i,
            "model": rec["model"] or config.model,
            "prompt_hash": rec["request_keys"][0] if rec["request_keys"] else None,
            "request_keys": rec["request_keys"],
            "input_tokens": rec["input_tokens"],
            "output_tokens": rec["output_tokens"],
            "repair_rounds": result.repairs,
            "status": result.status,
            "validation_errors": [_one_line(e, 600) for e in result.errors],
        }
        if result.status == "refused":
            record["rejection"] = {"stage": "model", "reason": _one_line(result.refusal or "refused")}
        elif result.status == "invalid":
            last = result.errors[-1] if result.errors else "invalid"
            record["rejection"] = {
                "stage": "validation",
                "reason": f"still invalid after {result.repairs} repair rounds: {_one_line(last, 600)}",
            }
        out.append(_Candidate(i, record, result.value))
    return out


def _offline_candidates(
    base: Mapping[str, Any],
    config: IdeateConfig,
    focus: Focus | None,
    base_dir: Path,
    check: Callable[[ScenarioProposal], None],
    notes: list[str],
) -> list[_Candidate]:
    from simgen.llm.cache import canonical_json

    proposals, skipped = offline_proposals(
        base, config.n, seed=config.seed, base_dir=base_dir, asset_roots=config.asset_roots, focus=focus
    )
    for s in skipped:
        notes.append(f"library level {s.name} does not apply to this base spec: {s.reason}")
    if len(proposals) < config.n:
        notes.append(f"the offline library gives {len(proposals)} proposals for this base spec (asked for {config.n})")
    out = []
    for i, p in enumerate(proposals):
        body = {"goal": _scrub(config.goal), "seed": config.seed, "proposal": p.model_dump(mode="json")}
        record: dict[str, Any] = {
            "request": i,
            "model": OFFLINE_MODEL,
            "prompt_hash": hashlib.sha256(canonical_json(body).encode()).hexdigest(),
            "input_tokens": 0,
            "output_tokens": 0,
            "repair_rounds": 0,
            "status": "ok",
            "validation_errors": [],
        }
        try:
            check(p)
        except (SimgenError, ValueError) as exc:
            record["status"] = "invalid"
            record["rejection"] = {"stage": "validation", "reason": _one_line(exc, 600)}
        out.append(_Candidate(i, record, p if record["status"] == "ok" else None))
    return out


def _header(config: IdeateConfig, record: Mapping[str, Any], base_spec: str | Path, verdicts: Sequence[Verdict]) -> str:
    goal = _one_line(_scrub(config.goal), 200) or "(none)"
    lines = [
        f"{HEADER} an edge-case scenario proposed, validated and probe-rendered by simgen ideate (data only).",
        f"# origin: model={record['model']} prompt_hash={record['prompt_hash']} request={record['request']} "
        f"round={record['repair_rounds']} seed={config.seed}",
        f"# goal: {goal}",
        f"# base: {Path(base_spec).as_posix()}",
    ]
    if config.from_report is not None:
        lines.append(f"# from_report: {Path(config.from_report).as_posix()}")
    lines += [f"# critic {v.critic}: {_one_line(_scrub(v.reason), 300)}" for v in verdicts]
    return "\n".join(lines) + "\n"


def _unique_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}-{k}" in taken:
        k += 1
    return f"{name}-{k}"


def ideate(
    base_spec: str | Path,
    out: str | Path,
    config: IdeateConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> IdeationResult:
    """Propose, validate, repair, probe-render and criticise edge-case scenarios of a base spec (module docstring).

    Args:
        base_spec: The base scene spec (or scenario) file.
        out: Output folder (created); earlier ``simgen ideate`` scenario files in it are replaced.
        config: Settings.
        progress: Called with a short line per stage (for a CLI status).

    Returns:
        The result; the kept scenarios are ``result.accepted``.

    Raises:
        SpecError, AssetError: The base spec is invalid.
        SimgenError: The report cannot be read, or no offline library level applies.
        LLMError: A request failed after its retries (finished answers stay cached: a rerun resumes free).
        APIKeyMissing: ``offline=False`` without a key.
    """
    config = config or IdeateConfig()
    say = progress or (lambda _line: None)
    out = Path(out)
    base, base_dir, categories = _load_base(base_spec, config.asset_roots)
    focus = read_focus(config.from_report, categories) if config.from_report is not None else None
    from simgen.llm import has_api_key

    offline = config.offline if config.offline is not None else not has_api_key()
    out.mkdir(parents=True, exist_ok=True)
    _clear_previous(out)
    result = IdeationResult(out, "offline" if offline else "llm", OFFLINE_MODEL if offline else config.model)
    if focus is not None:
        result.focus = focus.to_json()
        result.notes += [f"from report: {n}" for n in focus.notes]

    def check(p: ScenarioProposal) -> None:
        check_proposal(base, p, base_dir=base_dir, asset_roots=config.asset_roots)

    client = None
    if offline:
        if config.offline is None:
            result.notes.insert(0, "no ANTHROPIC_API_KEY: using the offline combinatorial ideator (factor library)")
        else:
            result.notes.insert(0, "offline: using the combinatorial ideator (factor library), not the model")
        if config.vision_critic:
            result.notes.append("the vision critic needs a model: skipped offline")
        say("proposing (offline ideator)")
        candidates = _offline_candidates(base, config, focus, base_dir, check, result.notes)
    else:
        from simgen.llm import Budget, LLMClient, LLMSettings, cache_dir_for, require_api_key

        require_api_key(fallback="or run without it for the offline ideator")
        settings = LLMSettings(
            model=config.model,
            max_tokens=4096,
            max_repairs=config.repairs,
            max_retries=config.max_retries,
            timeout_s=config.timeout_s,
            concurrency=config.concurrency,
        )
        client = LLMClient(settings, cache_dir=cache_dir_for(out), budget=Budget(max_requests=config.max_requests))
        say(f"proposing ({config.n} requests to {config.model})")
    try:
        if client is not None:
            candidates = _llm_candidates(client, base, categories, config, focus, check)
        _criticise(candidates, base, base_spec, base_dir, out, config, client, result, say)
    finally:
        if client is not None:
            result.usage = client.summary()
            client.close()
    return result


def _criticise(
    candidates: list[_Candidate],
    base: Mapping[str, Any],
    base_spec: str | Path,
    base_dir: Path,
    out: Path,
    config: IdeateConfig,
    client: Any,
    result: IdeationResult,
    say: Callable[[str], None],
) -> None:
    from simgen.io import atomic_write_text

    raw = spec_only(base)
    camera = raw.get("camera") or {}
    w, h = int(camera.get("width", 640)), int(camera.get("height", 480))
    resolution = (config.probe_width, max(8, round(config.probe_width * h / w)))
    roots = tuple(config.asset_roots)
    work = out / ".simgen"
    work.mkdir(parents=True, exist_ok=True)
    probes = Path(tempfile.mkdtemp(prefix="probes-", dir=work))
    kept: list[tuple[str, dict[str, Any]]] = []
    counts = {"proposed": len(candidates), "valid": 0, "valid_after_repair": 0, "accepted": 0, "duplicates": 0}
    counts.update({"refused": 0, "invalid": 0, "rejected_by_critic": 0})
    base_probe: ProbeResult | None = None
    try:
        for cand in candidates:
            rec = cand.record
            if cand.proposal is None:
                counts["refused" if rec["status"] == "refused" else "invalid"] += 1
                result.records.append(rec)
                continue
            counts["valid"] += 1
            counts["valid_after_repair"] += int(rec["repair_rounds"] > 0)
            data, _ = check_proposal(base, cand.proposal, base_dir=base_dir, asset_roots=roots)
            feats = proposal_features(data, base)
            rec["name"] = cand.proposal.name
            rec["rationale"] = cand.proposal.rationale
            near = [(proposal_distance(feats, f), name) for name, f in kept]
            closest = min(near) if near else None
            if closest is not None and closest[0] < config.duplicate_distance:
                counts["duplicates"] += 1
                why = f"near-duplicate of '{closest[1]}' (distance {closest[0]:.3f} < {config.duplicate_distance})"
                rec["rejection"] = {"stage": "duplicate", "reason": why}
                result.records.append(rec)
                continue
            if base_probe is None:
                say("rendering base probes")
                base_probe = render_probe(
                    raw, probes / "base", n_frames=config.probe_frames, resolution=resolution, seed=config.seed,
                    asset_roots=roots,
                )  # fmt: skip
                if not base_probe.ok:
                    raise SimgenError(f"{base_spec}: the base spec's probe render failed: {base_probe.reason}")
            say(f"probing {cand.proposal.name}")
            probe = render_probe(
                data, probes / f"p{cand.index:03d}", n_frames=config.probe_frames, resolution=resolution,
                seed=config.seed, asset_roots=roots,
            )  # fmt: skip
            verdicts = [auto_critic(probe, base_probe, min_acceptance=config.min_acceptance)]
            if verdicts[0].ok and config.vision_critic and client is not None:
                v, vrec = vision_critic(
                    client, probe.images, cand.proposal.name, cand.proposal.rationale, min_score=config.min_score,
                    salt=f"simgen-ideate-vision:{config.seed}:{cand.index}",
                )  # fmt: skip
                verdicts.append(v)
                rec["vision_request"] = {k: vrec[k] for k in ("request_keys", "input_tokens", "output_tokens")}
            rec["critic"] = [v.to_json() for v in verdicts]
            failed = next((v for v in verdicts if not v.ok), None)
            if failed is not None:
                counts["rejected_by_critic"] += 1
                rec["rejection"] = {"stage": f"critic:{failed.critic}", "reason": failed.reason}
                result.records.append(rec)
                continue
            name = _unique_name(cand.proposal.name, {n for n, _ in kept})
            data["name"] = name
            path = out / f"{name}.yaml"
            atomic_write_text(path, _header(config, rec, base_spec, verdicts) + scenario_yaml(data))
            rec["file"] = path.name
            kept.append((name, feats))
            result.accepted.append(path)
            counts["accepted"] += 1
            result.records.append(rec)
    finally:
        shutil.rmtree(probes, ignore_errors=True)
    result.summary = counts
    _write_jsonl(out, config, result)


def _write_jsonl(out: Path, config: IdeateConfig, result: IdeationResult) -> None:
    from simgen.io import atomic_write_text

    lines = [json.dumps({"kind": "request", **r}, sort_keys=True, allow_nan=False) for r in result.records]
    summary = {
        "kind": "summary",
        "mode": result.mode,
        "model": result.model,
        "goal": _one_line(_scrub(config.goal), 1000),
        "seed": config.seed,
        "from_report": None if config.from_report is None else Path(config.from_report).as_posix(),
        "focus": result.focus,
        **result.summary,
        "files": [p.name for p in result.accepted],
        "notes": [_scrub(n) for n in result.notes],
    }
    lines.append(json.dumps(summary, sort_keys=True, allow_nan=False))
    atomic_write_text(out / JSONL, "\n".join(lines) + "\n")
