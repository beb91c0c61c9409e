"""The coverage HTML page: self-contained, with plots that decode, drawn from coverage.json alone."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from simgen.scenarios.constraints import ConstraintTally, RejectionStats
from simgen.scenarios.coverage import coverage_report

pytestmark = pytest.mark.torch  # matplotlib comes with the [metrics] extra
pytest.importorskip("matplotlib")

from simgen.scenarios.coverage_html import render_coverage_html  # noqa: E402


def test_coverage_html_is_self_contained_with_decodable_plots(coverage_domains, coverage_frames):
    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.images, self.links, self.text = [], [], []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "img":
                self.images.append(a["src"])
            if a.get("href") or (tag == "script" and a.get("src")):
                self.links.append(a)

        def handle_data(self, data):
            self.text.append(data)

    stats = RejectionStats({"c1": ConstraintTally(attempts=8, held=4)}, frames=5, attempts=9)
    report = json.loads(
        json.dumps(coverage_report(coverage_domains, coverage_frames, stats=stats))
    )  # from coverage.json alone
    page = Page()
    page.feed(render_coverage_html(report))
    text = " ".join(page.text)
    assert "5 frames; 3 cells covered; 2-wise coverage 42.9% (9 of 21 tuples)" in text
    assert "acceptance 55.6% (5 frames in 9 attempts)" in text
    assert not page.links  # nothing loaded from elsewhere
    assert len(page.images) == 6  # cells, levels, pairs, constraints, visibility, truncation
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
        assert png is not None and png.shape[0] > 50 and png.std() > 0


def test_cell_rows_follow_the_factor_order_of_the_header(coverage_domains, coverage_frames):
    report = json.loads(json.dumps(coverage_report(coverage_domains, coverage_frames), sort_keys=True))
    # sort_keys puts each cell's levels in key order (clutter, fov, light): the rows must not follow it.
    page = render_coverage_html(report)
    assert "light, clutter, fov" in page
    assert "a, x, 30" in page and "x, 30, a" not in page


def test_the_coverage_page_renders_in_headless_chromium(coverage_domains, coverage_frames, tmp_path):
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    page = tmp_path / "coverage.html"
    page.write_text(render_coverage_html(json.loads(json.dumps(coverage_report(coverage_domains, coverage_frames)))))
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
         f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (1600, 1200)
    # Drawn, not blank: the plots put dark ink on a good share of the page.
    assert (image < 128).mean() > 0.01
