"""Checks for simgen's self-contained HTML pages (validation, coverage, tune reports).

Two checks, used by every page's tests:

* :func:`parse_page` reads the page with the standard library's HTML parser: its ``<h2>`` headings, the
  ``src`` of every ``<img>``, and anything that would be fetched (scripts, stylesheets, links), which must
  be nothing for a page meant to be mailed or archived.
* :func:`screenshot` renders the page in headless Chromium and returns the pixels, so a test can see that
  the browser drew plots rather than an error page. :func:`chromium_path` is None where no Chromium is
  installed (``apt-get install chromium``); tests skip then.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@dataclass
class PageContents:
    """What a page shows and what it would fetch."""

    headings: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)

    @property
    def visible_text(self) -> str:
        """The page's text nodes joined by spaces (what a reader sees, without markup)."""
        return " ".join(self.strings)

    def decoded_images(self) -> list[np.ndarray | None]:
        """Each inline image decoded with OpenCV (None where it is not an inline PNG that decodes)."""
        import cv2

        decoded: list[np.ndarray | None] = []
        for src in self.images:
            if not src.startswith("data:image/png;base64,"):
                decoded.append(None)
                continue
            png = np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8)
            decoded.append(cv2.imdecode(png, cv2.IMREAD_COLOR))
        return decoded


class _Reader(HTMLParser):
    def __init__(self, page: PageContents) -> None:
        super().__init__()
        self.page = page
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.page.images.append(a.get("src") or "")
        if tag in ("script", "link") or (tag == "a" and "href" in a):
            self.page.fetched.append(a.get("src") or a.get("href") or "")
        self._in_h2 = tag == "h2"

    def handle_data(self, data: str) -> None:
        self.page.strings.append(data)
        if self._in_h2 and data.strip():
            self.page.headings.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = self._in_h2 and tag != "h2"


def parse_page(html: str | Path) -> PageContents:
    """Read a page (its text, or the path of its file)."""
    text = html.read_text() if isinstance(html, Path) else html
    page = PageContents()
    _Reader(page).feed(text)
    return page


def chromium_path() -> str | None:
    """The installed Chromium, or None."""
    return next((path for name in _BROWSERS if (path := shutil.which(name))), None)


def screenshot(html_path: Path, *, width: int = 1200, height: int = 2000, timeout_s: float = 120) -> np.ndarray:
    """Render a page file in headless Chromium and return the screenshot as a BGR array.

    Raises:
        RuntimeError: No Chromium is installed, or it wrote no readable screenshot.
        subprocess.CalledProcessError: Chromium failed.
    """
    import cv2

    browser = chromium_path()
    if browser is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="simgen-chromium-") as tmp:
        shot = Path(tmp) / "shot.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--screenshot={shot}",
                f"--window-size={width},{height}",
                Path(html_path).resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )
        img = cv2.imread(str(shot))
    if img is None:
        raise RuntimeError(f"Chromium wrote no readable screenshot of {html_path}")
    return img
