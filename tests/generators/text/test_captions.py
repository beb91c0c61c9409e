"""text/scenario-captions-v1: captions from a real tiny dataset's labels, template and LLM modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simgen.generators.text.captions import (
    FrameFacts,
    LightingFacts,
    ObjectFacts,
    ScenarioCaptions,
    count_phrase,
    plural,
    read_frame_facts,
    template_caption,
)
from simgen.testing.fake_anthropic import FakeAnthropic, refusal, tool_use


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simgen.engine import generate

    out = tmp_path_factory.mktemp("tiny") / "ds"
    generate("scenes/tabletop_clutter.yaml", out, n_frames=4, renderer="tiny", resolution=(96, 72), seed=1)
    return out


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_facts_come_from_the_coco_labels_and_the_manifest(tiny_dataset: Path) -> None:
    facts = read_frame_facts(tiny_dataset)
    coco = json.loads((tiny_dataset / "annotations.coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert [f.image_id for f in facts] == sorted(im["id"] for im in coco["images"])
    for f in facts:
        anns = [a for a in coco["annotations"] if a["image_id"] == f.image_id]
        expected: dict[str, int] = {}
        for a in anns:
            expected[names[a["category_id"]]] = expected.get(names[a["category_id"]], 0) + 1
        assert f.counts() == dict(sorted(expected.items(), key=lambda kv: (-kv[1], kv[0])))
        assert f.scene == "tabletop clutter" and f.lighting is not None
        assert f.lighting.shadows is True and 30 <= f.lighting.elevation_deg <= 80  # the spec's light range
        assert f.visibility_measured is False  # tabletop_clutter does not measure visibility


def test_template_captions_name_every_category_with_its_count(tiny_dataset: Path) -> None:
    out = ScenarioCaptions().produce(read_frame_facts(tiny_dataset), rng(), None)
    assert len(out.records) == 4 and out.counts == {"kept": 4}
    for r in out.records:
        assert r.kind == "caption" and r.operation == "caption/template" and r.model is None
        assert r.parent_id == f"frame/{r.meta['frame']}" and r.generation == 1 and r.origin == "synthetic"
        for category, n in r.meta["facts"]["objects"].items():
            assert count_phrase(n, category) in r.caption
        assert "with shadows" in r.caption
    again = ScenarioCaptions().produce(read_frame_facts(tiny_dataset), rng(), None)
    assert [r.line() for r in again.records] == [r.line() for r in out.records]


def test_template_caption_on_planted_occlusion_truncation_and_lighting() -> None:
    objs = [
        ObjectFacts(category="mug", visibility=0.1),
        ObjectFacts(category="mug", visibility=0.5),
        ObjectFacts(category="mug", visibility=1.0),
        ObjectFacts(category="teddy", visibility=0.6),
        ObjectFacts(category="box", visibility=0.9, truncation=0.4),
    ]
    facts = FrameFacts(
        frame=3,
        image_id=4,
        file_name="images/000003.png",
        scene="bin picking",
        objects=objs,
        visibility_measured=True,
        lighting=LightingFacts(elevation_deg=70, intensity=0.6, ambient=0.4, shadows=False),
    )
    assert template_caption(facts) == (
        "A bin picking scene with three mugs, a box and a teddy. A mug is mostly hidden by other objects; "
        "a mug and a teddy are partly hidden by other objects; a box is cut off by the image edge. "
        "Dim light from high above, without shadows."
    )
    night = FrameFacts(frame=0, image_id=1, file_name="x", lighting=LightingFacts(sun_altitude_deg=-20, fog_density=50))
    assert template_caption(night) == "A scene with no labelled objects. Night, fog."


def test_plurals() -> None:
    assert [plural(w) for w in ("mug", "box", "teddy", "person", "traffic light", "bus", "toy")] == [
        "mugs",
        "boxes",
        "teddies",
        "people",
        "traffic lights",
        "buses",
        "toys",
    ]
    assert count_phrase(1, "apple") == "an apple" and count_phrase(15, "block") == "15 blocks"


def test_llm_mode_paraphrases_and_checks_the_categories(tiny_dataset: Path, model, client_of) -> None:
    facts = read_frame_facts(tiny_dataset)
    everything = tuple(
        c["name"] for c in json.loads((tiny_dataset / "annotations.coco.json").read_text())["categories"]
    )
    with FakeAnthropic(model) as server:
        out = ScenarioCaptions(mode="llm", categories=everything).produce(facts, rng(), client_of(server))
    assert len(out.records) == 4 and out.stats["fallbacks"] == 0
    for r in out.records:
        assert r.operation == "caption/paraphrase" and r.caption.startswith("Photo showing")
        assert r.template == "captions/paraphrase-v1" and r.model == "claude-fake" and r.request_keys
    assert server.hits == 4


def test_llm_caption_that_names_an_absent_category_is_repaired(tiny_dataset: Path, model, client_of) -> None:
    facts = read_frame_facts(tiny_dataset)[1:2]  # one frame, one mug
    assert facts[0].counts() == {"mug": 1}
    answers = iter([tool_use({"caption": "A duck beside a cup."}), tool_use({"caption": "A lone mug on the table."})])
    model.plant["submit_caption"] = lambda req: next(answers)
    with FakeAnthropic(model) as server:
        out = ScenarioCaptions(mode="llm", categories=("mug", "duck")).produce(facts, rng(), client_of(server))
    assert out.records[0].caption == "A lone mug on the table."
    repair = server.requests[1].body["messages"][2]["content"][0]["content"]
    assert "must mention mug" in repair and "names duck" in repair


def test_refused_llm_caption_falls_back_to_the_template(tiny_dataset: Path, model, client_of) -> None:
    facts = read_frame_facts(tiny_dataset)[:1]
    model.plant["submit_caption"] = lambda req: refusal("No captions today.")
    with FakeAnthropic(model) as server:
        out = ScenarioCaptions(mode="llm").produce(facts, rng(), client_of(server))
    r = out.records[0]
    assert r.caption == template_caption(facts[0]) and r.operation == "caption/template"
    assert "No captions today." in r.meta["fallback"] and out.counts["caption_refused"] == 1


def test_a_folder_without_labels_is_one_clear_error(tmp_path: Path) -> None:
    from simgen.errors import SimgenError

    with pytest.raises(SimgenError, match="annotations.coco.json: no such file"):
        read_frame_facts(tmp_path)


def test_a_damaged_manifest_or_coco_file_is_one_clear_error(tiny_dataset: Path, tmp_path: Path) -> None:
    import shutil

    from simgen.errors import SimgenError

    copy = tmp_path / "ds"
    shutil.copytree(tiny_dataset, copy)
    with (copy / "manifest.jsonl").open("a") as fh:
        fh.write('{"frame": 9, "view": {\n')  # a torn line
    lines = (copy / "manifest.jsonl").read_text().count("\n")
    with pytest.raises(SimgenError, match=rf"manifest.jsonl:{lines}: not a manifest line"):
        read_frame_facts(copy)
    (copy / "manifest.jsonl").unlink()
    (copy / "annotations.coco.json").write_text('{"images": [{"file_name": "x.png"}], "annotations": []}')
    with pytest.raises(SimgenError, match="not a COCO file simgen can caption"):
        read_frame_facts(copy)
