"""The coverage HTML page: self-contained, with plots that decode, drawn from coverage.json alone."""

from __future__ import annotations

import json

import pytest

from simgen.scenarios.constraints import ConstraintTally, RejectionStats
from simgen.scenarios.coverage import coverage_report
from simgen.testing.html import chromium_path, parse_page, screenshot

pytestmark = pytest.mark.torch  # matplotlib comes with the [metrics] extra
pytest.importorskip("matplotlib")

from simgen.scenarios.coverage_html import render_coverage_html  # noqa: E402


def test_coverage_html_is_self_contained_with_decodable_plots(coverage_domains, coverage_frames):
    stats = RejectionStats({"c1": ConstraintTally(attempts=8, held=4)}, frames=5, attempts=9)
    report = json.loads(
        json.dumps(coverage_report(coverage_domains, coverage_frames, stats=stats))
    )  # from coverage.json alone
    page = parse_page(render_coverage_html(report))
    text = page.visible_text
    assert "5 frames; 3 cells covered; 2-wise coverage 42.9% (9 of 21 tuples)" in text
    assert "acceptance 55.6% (5 frames in 9 attempts)" in text
    assert not page.fetched  # nothing loaded from elsewhere
    assert len(page.images) == 6  # cells, levels, pairs, constraints, visibility, truncation
    for png in page.decoded_images():
        assert png is not None and png.shape[0] > 50 and png.std() > 0


def test_cell_rows_follow_the_factor_order_of_the_header(coverage_domains, coverage_frames):
    report = json.loads(json.dumps(coverage_report(coverage_domains, coverage_frames), sort_keys=True))
    # sort_keys puts each cell's levels in key order (clutter, fov, light): the rows must not follow it.
    page = render_coverage_html(report)
    assert "light, clutter, fov" in page
    assert "a, x, 30" in page and "x, 30, a" not in page


@pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_coverage_page_renders_in_headless_chromium(coverage_domains, coverage_frames, tmp_path):
    page = tmp_path / "coverage.html"
    page.write_text(render_coverage_html(json.loads(json.dumps(coverage_report(coverage_domains, coverage_frames)))))
    image = screenshot(page, height=1600)
    assert image.shape[:2] == (1600, 1200)
    # Drawn, not blank: the plots put dark ink on a good share of the page.
    assert (image < 128).mean() > 0.01
