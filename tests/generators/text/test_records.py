"""Text records, the seed tasks written for simgen, user seed files and the prompt templates."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError

from simgen.errors import RegistryError, SpecError
from simgen.generators.text.prompts import PINNED_SHA256, TEMPLATES, get_template, parse_template
from simgen.generators.text.records import TextRecord, load_seeds, read_records, record_id, records_jsonl

# -- seeds


def test_the_shipped_seed_tasks() -> None:
    seeds = load_seeds()
    assert 35 <= len(seeds) <= 60
    assert len({s.id for s in seeds}) == len(seeds) and all(s.id.startswith("simgen-seed-") for s in seeds)
    assert all(s.origin == "real" and s.generation == 0 and s.operation == "seed" for s in seeds)
    assert all(s.instruction and s.output for s in seeds)
    assert 4 <= sum(s.meta["is_classification"] for s in seeds) <= len(seeds) // 2
    assert sum(bool(s.input) for s in seeds) >= len(seeds) // 2  # tasks with and without input
    # No two seeds are near-duplicates of each other (they seed a ROUGE-L < 0.7 pool).
    from simgen.generators.text.dedup import brute_force_pairs

    assert brute_force_pairs([s.instruction for s in seeds], 0.7) == []


def test_user_seeds_in_self_instruct_and_alpaca_formats(tmp_path: Path) -> None:
    path = tmp_path / "seeds.jsonl"
    lines = [
        {"id": "t1", "instruction": "Name a sensor.", "instances": [{"input": "", "output": "A lidar."}]},
        {"instruction": "Add the numbers.", "input": "2, 3", "output": "5"},
        {"instruction": "Explain drift."},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    seeds = load_seeds(path)
    assert seeds[0].id == "t1" and seeds[1].id.startswith("seed-") and seeds[1].input == "2, 3"
    assert seeds[2].output == "" and load_seeds(path)[1].id == seeds[1].id  # content ids are stable


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"instruction": "x"}\n{not json\n', r"seeds.jsonl:2: not valid JSON"),
        ('{"instrucion": "Explain drift."}\n', r"(?s)seeds.jsonl:1: .*did you mean 'instruction'"),
        (
            '{"id": "a", "instruction": "x"}\n{"id": "a", "instruction": "y"}\n',
            r"seeds.jsonl:2: id 'a' is already used on line 1",
        ),
        ('{"instruction": "x", "input": "a", "instances": [{"output": "b"}]}\n', r"either 'instances'"),
        ("\n\n", r"no seed tasks"),
    ],
)
def test_seed_file_errors_name_the_line_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "seeds.jsonl"
    path.write_text(body)
    with pytest.raises(SpecError, match=message):
        load_seeds(path)


def test_missing_seed_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_seeds(tmp_path / "nope.jsonl")


# -- records


def test_record_lines_are_canonical_and_round_trip(tmp_path: Path) -> None:
    seeds = load_seeds()[:3]
    text = records_jsonl(seeds)
    assert text.count("\n") == 3 and json.loads(text.splitlines()[0])["id"] == seeds[0].id
    (tmp_path / "r.jsonl").write_text(text)
    assert read_records(tmp_path / "r.jsonl") == seeds
    assert seeds[0].line() == TextRecord.model_validate_json(seeds[0].line()).line()


def test_record_invariants() -> None:
    with pytest.raises(ValidationError, match="generation 0"):
        TextRecord(id="x", instruction="Do it.", operation="seed", origin="real", generation=1)
    with pytest.raises(ValidationError, match="non-empty 'caption'"):
        TextRecord(id="x", kind="caption", operation="caption/template", origin="synthetic", generation=1)
    with pytest.raises(ValidationError, match="extra"):
        TextRecord(id="x", instruction="Do it.", operation="seed", origin="real", generation=0, colour="red")
    assert record_id("si", "a", 1) == record_id("si", "a", 1) != record_id("si", "a", 2)


def test_bad_records_file_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text(load_seeds()[0].line() + "\n" + '{"id": "x"}\n')
    with pytest.raises(SpecError, match=r"r.jsonl:2"):
        read_records(tmp_path / "r.jsonl")


# -- templates


def test_templates_are_pinned_by_hash_and_shipped() -> None:
    folder = resources.files("simgen.generators.text").joinpath("templates")
    shipped = sorted(p.name for p in folder.iterdir() if p.name.endswith(".txt"))
    assert shipped == sorted(TEMPLATES.values())  # every file is registered, every name has a file
    for name, file in TEMPLATES.items():
        data = folder.joinpath(file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == PINNED_SHA256[name], (
            f"{file} changed: a new text needs a new version name (never edit a released template)"
        )
        t = get_template(name)
        assert t.sha256 == PINNED_SHA256[name] and "user" in t.sections


def test_render_fills_each_placeholder_once_and_checks_names() -> None:
    t = get_template("respond-v1")
    assert t.render("user", prompt="Costs $5; keep $prompt literal") == "Costs $5; keep $prompt literal"
    with pytest.raises(KeyError, match="needs a value"):
        t.render("user")
    with pytest.raises(ValueError, match="no placeholder"):
        t.render("user", prompt="x", promt="y")
    with pytest.raises(KeyError, match="did you mean 'user'"):
        t.section("usr")
    depth = get_template("evol-instruct/depth-v1")
    assert depth.names("method") == [
        "add_constraints",
        "deepen",
        "concretize",
        "increase_reasoning",
        "complicate_input",
    ]


def test_unknown_template_and_bad_files() -> None:
    with pytest.raises(RegistryError, match="did you mean 'respond-v1'"):
        get_template("respond-v2")
    with pytest.raises(ValueError, match="line 1: text before the first"):
        parse_template("x", b"hello\n[user]\nhi\n")
    with pytest.raises(ValueError, match="appears twice"):
        parse_template("x", b"[user]\na\n[user]\nb\n")
