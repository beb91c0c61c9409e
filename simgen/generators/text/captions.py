"""``text/scenario-captions-v1``: a caption for each frame of an image dataset, written from its labels.

The facts of a frame (:class:`FrameFacts`) come from the dataset's files, never from the pixels:

- ``annotations.coco.json``: the categories and how many of each are in the frame; each object's visibility (the
  share of its pixels that other objects do not hide, where the dataset measured it) and truncation (the share of
  its projected box outside the image);
- ``manifest.jsonl`` (when present): the lighting of the frame from its view patches: a directional light's
  elevation, intensity and ambient level, or CARLA weather's sun altitude, cloudiness, rain and fog;
- ``dataset.json`` (when present): the scene's name.

Two modes:

- ``template`` (default, offline, no LLM): :func:`template_caption` turns the facts into fixed sentences. The same
  facts always give the same caption.
- ``llm``: the model paraphrases the same facts (``captions/paraphrase-v1``, with the template caption as a
  reference). The answer must name every category of the frame and no category of the dataset that is not in
  it; a violation goes back to the model for repair. A caption still refused or invalid falls back to the
  template caption (``meta.fallback`` says why), so every frame gets one.

A caption record's parent is its frame (``parent_id`` = ``frame/<index>``, generation 1: frames are rendered from
a spec, generation 0), its origin ``synthetic``, and ``meta`` holds the facts it was written from.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from simgen.errors import SimgenError
from simgen.generators.text.prompts import Template, answered_by, get_template, request, response_keys
from simgen.generators.text.records import Produced, Rejection, RngArg, TextRecord, record_id
from simgen.llm import LLMClient

__all__ = [
    "Caption",
    "FrameFacts",
    "LightingFacts",
    "ObjectFacts",
    "ScenarioCaptions",
    "count_phrase",
    "lighting_phrase",
    "plural",
    "read_frame_facts",
    "template_caption",
]

#: Objects with visibility below this are "partly hidden"; below MOSTLY_HIDDEN, "mostly hidden".
PARTLY_HIDDEN = 0.75
MOSTLY_HIDDEN = 0.25
#: Objects with truncation above this are "cut off by the image edge".
CUT_OFF = 0.1
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_IRREGULAR = {
    "person": "people",
    "child": "children",
    "mouse": "mice",
    "foot": "feet",
    "sheep": "sheep",
    "fish": "fish",
    "knife": "knives",
    "leaf": "leaves",
    "shelf": "shelves",
}


class ObjectFacts(BaseModel):
    """What the labels say about one object of a frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    visibility: float | None = None
    truncation: float | None = None


class LightingFacts(BaseModel):
    """The lighting of a frame, as sampled (every field optional: a backend gives what it has)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    elevation_deg: float | None = None
    intensity: float | None = None
    ambient: float | None = None
    shadows: bool | None = None
    sun_altitude_deg: float | None = None
    cloudiness: float | None = None
    precipitation: float | None = None
    fog_density: float | None = None


class FrameFacts(BaseModel):
    """Everything a caption may say about one frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame: int
    image_id: int
    file_name: str
    scene: str | None = None
    objects: list[ObjectFacts] = Field(default_factory=list)
    lighting: LightingFacts | None = None
    visibility_measured: bool = False

    def counts(self) -> dict[str, int]:
        """Category -> objects, most frequent first, then by name."""
        c = Counter(o.category for o in self.objects)
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def hidden(self, low: float, high: float) -> dict[str, int]:
        """Category -> objects with ``low <= visibility < high`` (only where visibility was measured)."""
        c = Counter(o.category for o in self.objects if o.visibility is not None and low <= o.visibility < high)
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def cut_off(self) -> dict[str, int]:
        """Category -> objects truncated by more than :data:`CUT_OFF`."""
        c = Counter(o.category for o in self.objects if o.truncation is not None and o.truncation > CUT_OFF)
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> dict[str, Any]:
        """The facts as the LLM sees them (counts, not per-object lists)."""
        out: dict[str, Any] = {"scene": self.scene, "objects": self.counts()}
        if self.visibility_measured:
            out["partly_hidden"] = self.hidden(MOSTLY_HIDDEN, PARTLY_HIDDEN)
            out["mostly_hidden"] = self.hidden(0.0, MOSTLY_HIDDEN)
        out["cut_off_by_image_edge"] = self.cut_off()
        if self.lighting is not None:
            out["lighting"] = lighting_phrase(self.lighting)
        return out


# -- reading a dataset ------------------------------------------------------------------------------------


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimgenError(f"{path}: no such file; captions need a simgen dataset's COCO annotations") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SimgenError(f"{path}: not valid JSON ({exc})") from None


def _finite(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def _lighting(view: Any) -> LightingFacts | None:
    """The lighting in a manifest line's view patches: a ``light`` patch or CARLA ``weather`` fields."""
    if not isinstance(view, dict):
        return None
    found: dict[str, Any] = {}
    for patch in view.values():
        if not isinstance(patch, dict):
            continue
        light = patch.get("light")
        if isinstance(light, dict):
            sampled = light.get("sampled") if isinstance(light.get("sampled"), dict) else {}
            found.update(
                elevation_deg=_finite(sampled.get("elevation_deg")),
                intensity=_finite(sampled.get("intensity")),
                ambient=_finite(light.get("ambient")),
                shadows=light.get("shadows") if isinstance(light.get("shadows"), bool) else None,
            )
        weather = (patch.get("carla") or {}).get("weather") if isinstance(patch.get("carla"), dict) else None
        if isinstance(weather, dict) and isinstance(weather.get("fields"), dict):
            f = weather["fields"]
            found.update(
                sun_altitude_deg=_finite(f.get("sun_altitude_angle")),
                cloudiness=_finite(f.get("cloudiness")),
                precipitation=_finite(f.get("precipitation")),
                fog_density=_finite(f.get("fog_density")),
            )
    found = {k: v for k, v in found.items() if v is not None}
    return LightingFacts(**found) if found else None


def _manifest_lighting(path: Path) -> dict[int, LightingFacts | None]:
    """Frame -> lighting, from ``manifest.jsonl`` (one line per frame)."""
    lighting: dict[int, LightingFacts | None] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                lighting[int(entry["frame"])] = _lighting(entry.get("view"))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise SimgenError(f"{path}:{lineno}: not a manifest line ({type(exc).__name__}: {exc})") from None
    return lighting


def read_frame_facts(dataset: str | os.PathLike[str]) -> list[FrameFacts]:
    """The facts of every frame of a simgen dataset, in image-id order.

    Args:
        dataset: The dataset folder (with ``annotations.coco.json``; ``manifest.jsonl`` and ``dataset.json`` are
            read when present).

    Raises:
        SimgenError: No COCO file, a file that is not JSON, or a COCO image or annotation without its ids.
    """
    root = Path(dataset)
    info = _load_json(root / "dataset.json") if (root / "dataset.json").is_file() else {}
    coco_name = (info.get("files") or {}).get("coco", "annotations.coco.json") if isinstance(info, dict) else None
    coco_path = root / (coco_name or "annotations.coco.json")
    coco = _load_json(coco_path)
    lighting = _manifest_lighting(root / "manifest.jsonl") if (root / "manifest.jsonl").is_file() else {}
    scene = info.get("spec_name") if isinstance(info, dict) else None
    try:
        names = {c["id"]: str(c["name"]).replace("_", " ") for c in coco.get("categories", [])}
        by_image: dict[int, list[ObjectFacts]] = {}
        measured: dict[int, bool] = {}
        for ann in coco.get("annotations", []):
            vis = _finite(ann.get("visibility"))
            obj = ObjectFacts(category=names.get(ann.get("category_id"), "object"), visibility=vis,
                              truncation=_finite(ann.get("truncation")))  # fmt: skip
            by_image.setdefault(ann["image_id"], []).append(obj)
            measured[ann["image_id"]] = measured.get(ann["image_id"], False) or vis is not None
        facts = []
        for image in sorted(coco.get("images", []), key=lambda im: im["id"]):
            frame = int(image.get("frame_index", image["id"]))
            facts.append(
                FrameFacts(
                    frame=frame,
                    image_id=int(image["id"]),
                    file_name=str(image.get("file_name", "")),
                    scene=str(scene).replace("_", " ") if scene else None,
                    objects=by_image.get(image["id"], []),
                    lighting=lighting.get(frame),
                    visibility_measured=measured.get(image["id"], False),
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SimgenError(f"{coco_path}: not a COCO file simgen can caption ({type(exc).__name__}: {exc})") from None
    return facts


# -- the template caption ---------------------------------------------------------------------------------


def plural(noun: str) -> str:
    """English plural of a category name (last word; a few irregular nouns)."""
    head, _, last = noun.rpartition(" ")
    low = last.lower()
    if low in _IRREGULAR:
        word = _IRREGULAR[low]
    elif re.search(r"(s|x|z|ch|sh)$", low):
        word = last + "es"
    elif re.search(r"[^aeiou]y$", low):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def count_phrase(count: int, noun: str) -> str:
    """``a mug``, ``an apple``, ``three cubes``, ``15 blocks``."""
    if count == 1:
        return f"{_article(noun)} {noun}"
    number = _NUMBERS[count] if count < len(_NUMBERS) else str(count)
    return f"{number} {plural(noun)}"


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def lighting_phrase(light: LightingFacts) -> str:
    """A short description of the lighting (``soft light from high above, with shadows``)."""
    words: list[str] = []
    if light.sun_altitude_deg is not None:
        alt = light.sun_altitude_deg
        words.append("night" if alt < -6 else "twilight" if alt < 0 else "low sun" if alt < 15 else "daylight")
        if light.cloudiness is not None and light.cloudiness >= 60:
            words.append("overcast sky")
        if light.precipitation is not None and light.precipitation >= 30:
            words.append("rain")
        if light.fog_density is not None and light.fog_density >= 30:
            words.append("fog")
        return ", ".join(words)
    level = None
    if light.intensity is not None or light.ambient is not None:
        brightness = (light.intensity or 1.0) * (0.5 + (light.ambient if light.ambient is not None else 0.5))
        level = "dim" if brightness < 0.8 else "bright" if brightness > 1.1 else "even"
    direction = None
    if light.elevation_deg is not None:
        e = light.elevation_deg
        direction = "from high above" if e >= 60 else "from a low angle" if e < 35 else "from the side"
    head = " ".join(w for w in (level, "light", direction) if w)
    if head != "light":
        words.append(head)
    if light.shadows is not None:
        words.append("with shadows" if light.shadows else "without shadows")
    return ", ".join(words)


def template_caption(facts: FrameFacts) -> str:
    """The deterministic caption of a frame's facts (see the module docstring)."""
    counts = facts.counts()
    where = f"A {facts.scene} scene" if facts.scene else "A scene"
    sentences = []
    if counts:
        sentences.append(f"{where} with {_join([count_phrase(c, k) for k, c in counts.items()])}.")
    else:
        sentences.append(f"{where} with no labelled objects.")
    notes = []
    if facts.visibility_measured:
        for phrase, found in (
            ("mostly hidden", facts.hidden(0.0, MOSTLY_HIDDEN)),
            ("partly hidden", facts.hidden(MOSTLY_HIDDEN, PARTLY_HIDDEN)),
        ):
            if found:
                total = sum(found.values())
                verb = "is" if total == 1 else "are"
                notes.append(
                    f"{_join([count_phrase(c, k) for k, c in found.items()])} {verb} {phrase} by other objects"
                )
    cut = facts.cut_off()
    if cut:
        total = sum(cut.values())
        notes.append(
            f"{_join([count_phrase(c, k) for k, c in cut.items()])} {'is' if total == 1 else 'are'} "
            "cut off by the image edge"
        )
    if notes:
        text = "; ".join(notes)
        sentences.append(text[0].upper() + text[1:] + ".")
    if facts.lighting is not None:
        light = lighting_phrase(facts.lighting)
        if light:
            sentences.append(light[0].upper() + light[1:] + ".")
    return " ".join(sentences)


# -- the generator ----------------------------------------------------------------------------------------


class Caption(BaseModel):
    """Submit the caption."""

    caption: str = Field(min_length=1, max_length=600, description="One to three sentences.")


def _mentions(text: str, noun: str) -> bool:
    """Whether ``text`` names ``noun`` (singular or plural, whole words, any case)."""
    forms = {noun.lower(), plural(noun).lower()}
    return any(re.search(rf"\b{re.escape(f)}\b", text.lower()) for f in forms)


@dataclass
class ScenarioCaptions:
    """The ``text/scenario-captions-v1`` generator (see the module docstring).

    Args:
        mode: ``template`` (no LLM) or ``llm``.
        categories: Every category name of the dataset, for the LLM mode's "names no absent category" check
            (default: the categories seen in the shard's frames).
    """

    name: ClassVar[str] = "text/scenario-captions-v1"
    uses_llm: ClassVar[bool] = False  # the default mode needs none

    mode: Literal["template", "llm"] = "template"
    categories: tuple[str, ...] = ()
    _template: Template = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("template", "llm"):
            raise ValueError(f"ScenarioCaptions.mode: expected 'template' or 'llm', got {self.mode!r}")
        self.categories = tuple(self.categories)
        self._template = get_template("captions/paraphrase-v1")

    def config(self) -> dict[str, Any]:
        """Settings (and the template hash in LLM mode), for ``dataset.json``."""
        cfg: dict[str, Any] = {
            "generator": self.name,
            "mode": self.mode,
            "thresholds": {"partly_hidden": PARTLY_HIDDEN, "mostly_hidden": MOSTLY_HIDDEN, "cut_off": CUT_OFF},
        }
        if self.mode == "llm":
            cfg["templates"] = [self._template.ref()]
        return cfg

    def produce(
        self, units: Sequence[FrameFacts], rng: RngArg, client: LLMClient | None, *, n: int | None = None
    ) -> Produced:
        """One caption record per frame of ``units`` (``rng`` and ``n`` are not used).

        Raises:
            ValueError: LLM mode without a client.
            LLMError, BudgetExhausted: From the client (LLM mode); a rerun replays the cache.
        """
        out = Produced(stats={"frames": len(units), "fallbacks": 0})
        base = [template_caption(f) for f in units]
        if self.mode == "template":
            out.records = [self._record(f, text, "caption/template") for f, text in zip(units, base, strict=True)]
            return out
        if client is None:
            raise ValueError("scenario captions in 'llm' mode need an LLM client")
        everything = set(self.categories) or {o.category for f in units for o in f.objects}
        requests = [
            request(
                self._template,
                Caption,
                salt=f"{self.name}:frame/{f.frame}",
                check=self._check(f, everything),
                facts=json.dumps(f.summary(), sort_keys=True, ensure_ascii=False),
                template_caption=text,
            )
            for f, text in zip(units, base, strict=True)
        ]
        results = client.structured_many(requests)
        for f, text, result in zip(units, base, results, strict=True):
            if result.status == "ok":
                out.records.append(
                    self._record(f, result.value.caption.strip(), "caption/paraphrase", result=result, client=client)
                )
                continue
            out.stats["fallbacks"] += 1
            why = result.refusal or "; ".join(result.errors)[:300]
            out.rejected.append(Rejection(f"caption_{result.status}", text, f"frame/{f.frame}", {"why": why}))
            out.records.append(self._record(f, text, "caption/template", fallback=f"{result.status}: {why}"))
        return out

    @staticmethod
    def _check(facts: FrameFacts, everything: set[str]) -> Any:
        present = set(facts.counts())
        absent = sorted(everything - present)

        def check(caption: Caption) -> None:
            missing = sorted(c for c in present if not _mentions(caption.caption, c))
            extra = [c for c in absent if _mentions(caption.caption, c)]
            problems = []
            if missing:
                problems.append(f"the caption must mention {', '.join(missing)}")
            if extra:
                problems.append(f"the caption names {', '.join(extra)}, which the frame does not contain")
            if problems:
                raise ValueError("caption: " + "; ".join(problems))

        return check

    def _record(
        self,
        facts: FrameFacts,
        text: str,
        operation: str,
        *,
        result: Any = None,
        client: LLMClient | None = None,
        fallback: str | None = None,
    ) -> TextRecord:
        meta: dict[str, Any] = {
            "frame": facts.frame,
            "image_id": facts.image_id,
            "file_name": facts.file_name,
            "facts": facts.summary(),
        }
        if fallback:
            meta["fallback"] = fallback
        llm = result is not None and client is not None
        return TextRecord(
            id=record_id("cap", self.name, facts.frame, facts.file_name, operation, text),
            kind="caption",
            caption=text,
            parent_id=f"frame/{facts.frame}",
            operation=operation,
            generator=self.name,
            model=answered_by(result, client.settings.model) if llm else None,
            template=self._template.name if llm else None,
            template_sha256=self._template.sha256 if llm else None,
            request_keys=response_keys(result) if llm else [],
            origin="synthetic",
            generation=1,
            meta=meta,
        )
