"""Look at the built book the way a reader does: in headless Chromium.

Chromium renders each chapter page and hands back the DOM after its scripts ran. From
that we check what a reader would notice first: code cells show their executed output,
and every link in the page (navigation, cross-links, the table of contents) leads to a
page or file that exists in the build.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.outputs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")
        if "cell_output" in (values.get("class") or "").split():
            self.outputs += 1


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium)")


def render(page: Path, timeout: float = 60) -> str:
    """The page's DOM after Chromium has loaded it and run its scripts."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0 or "<html" not in result.stdout:
        raise RuntimeError(f"Chromium could not render {page}: {result.stderr.strip()[-500:]}")
    return result.stdout


def broken_links(page: Path, links: list[str]) -> list[str]:
    broken = []
    for href in links:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path:
            continue  # external links and same-page anchors
        target = (page.parent / unquote(parts.path)).resolve()
        if not target.exists():
            broken.append(href)
    return broken


def check_book(html: Path) -> list[str]:
    """Problems a reader would meet in the built book; an empty list means none."""
    if not (html / "index.html").is_file():
        return [f"no built book at {html}: run `make book` first"]
    pages = sorted((html / "chapters").glob("*.html"))
    if not pages:
        return [f"no chapter pages under {html / 'chapters'}"]
    problems = []
    # index.html is only a redirect to the root page; check the root page itself.
    for page in [html / "intro.html", *pages]:
        parser = _PageParser()
        parser.feed(render(page))
        name = page.relative_to(html)
        if page.parent.name == "chapters" and parser.outputs == 0:
            problems.append(f"{name}: no executed code output on the page")
        problems += [f"{name}: link to {href} leads nowhere" for href in broken_links(page, parser.links)]
        if not parser.links:
            problems.append(f"{name}: the page has no links (navigation did not render)")
    return problems
