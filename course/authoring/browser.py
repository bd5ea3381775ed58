"""Look at the built book the way a reader does: in headless Chromium.

Chromium is driven through its DevTools protocol (a websocket; no Playwright needed). Each
page of the book is loaded at 1280 px and at 390 px (a phone), and we check what a reader
would notice:

- code cells show their executed output, and nothing of the test plumbing (``NBVAL``);
- no code or output block scrolls sideways at 1280 px;
- a cell's printed output is one box, not one box per ``print`` (split streams);
- no console errors (a script that failed, a file that did not load);
- notebook pages offer launch buttons (Binder, Colab) and an ``.ipynb`` download, and a
  chapter whose code can run in Pyodide offers JupyterLite (and only such a chapter);
- every image loaded, every link leads to a page or file that exists in the build, and
  no page is wider than a phone's screen.

Each page is saved as a screenshot under ``_build/browser-check/`` (JPEG, 1280 and 390 px,
and 1280 px in dark mode for pages with diagrams; at most 12,000 px of each page) for a
person to look at. The JupyterLite site itself is not opened: it needs HTTP, and its
Pyodide kernel downloads Python from a CDN, which an offline check cannot do.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from course.layout import APPENDIX, CHAPTERS, EXERCISES

BROWSERS = 2  # Chromium instances at once
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)
DESKTOP, PHONE = 1280, 390
MAX_SHOT_HEIGHT = 12000  # px: longer pages are cut in the screenshot, not in the checks

# Measured in the page after it has loaded. Returns plain data for the checks below.
MEASURE = r"""
(() => {
  const blocks = [...document.querySelectorAll(
    "div.cell_input pre, div.cell_output pre, div.highlight pre, div.output pre")];
  const overflowing = blocks
    .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
    .map(pre => ({
      where: pre.closest("div.cell_output, div.output") ? "output" : "code",
      by: pre.scrollWidth - pre.clientWidth,
      line: (pre.innerText.split("\n").find(l => l.length > 0) || "").slice(0, 70),
    }));
  let split = 0;
  for (const out of document.querySelectorAll("div.cell_output")) {
    const kids = [...out.children];
    for (let i = 1; i < kids.length; i++) {
      const a = kids[i - 1].classList, b = kids[i].classList;
      if (a.contains("stream") && b.contains("stream") &&
          a.contains("stderr") === b.contains("stderr")) split++;
    }
  }
  const launch = [...document.querySelectorAll(".dropdown-launch-buttons a")]
    .map(a => a.innerText.trim());
  const downloads = [...document.querySelectorAll(".dropdown-download-buttons a")]
    .map(a => a.innerText.trim());
  const brokenImages = [...document.images]
    .filter(img => !img.complete || img.naturalWidth === 0)
    .map(img => img.getAttribute("src"));
  return {
    overflowing, split, launch, downloads, brokenImages,
    outputs: document.querySelectorAll("div.cell_output").length,
    nbval: (document.body.innerText.match(/NBVAL_\w+/g) || []).length,
    diagrams: document.querySelectorAll("img.graphviz").length,
    links: [...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href")),
    height: Math.ceil(document.documentElement.scrollHeight),
    pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
  };
})()
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium)")


class DevTools:
    """A minimal DevTools protocol client for one browser tab."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        # A local socket needs no keepalive pings; events queue up unbounded while a page
        # loads, so reading never stalls (a stalled reader would miss the pongs anyway).
        self._socket = connect(url, max_size=None, max_queue=None, ping_interval=None, open_timeout=30)
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self._next += 1
        self._socket.send(json.dumps({"id": self._next, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        if any(e.get("method") == event for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(message)
            if message.get("method") == event:
                return

    def close(self) -> None:
        self._socket.close()


@contextmanager
def browser_tab() -> Iterator[DevTools]:
    """Start headless Chromium and connect to its first tab."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port = _devtools_port(process)
            tab = _first_tab(port)
            client = DevTools(tab)
            try:
                yield client
            finally:
                client.close()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _devtools_port(process: subprocess.Popen[str], timeout: float = 30) -> int:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if match:
            return int(match.group(1))
    raise RuntimeError("Chromium did not start its DevTools server:\n" + "".join(seen[-10:]))


def _first_tab(port: int) -> str:
    from urllib.request import urlopen

    for _ in range(50):
        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            targets = json.load(response)
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            return str(pages[0]["webSocketDebuggerUrl"])
        time.sleep(0.1)
    raise RuntimeError("Chromium has no tab to drive")


@dataclass
class PageReport:
    name: str
    measures: dict[str, Any] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)


def load(tab: DevTools, page: Path, width: int, dark: bool = False) -> PageReport:
    """Load ``page`` at ``width`` px and measure it; console errors are collected."""
    tab.call(
        "Emulation.setDeviceMetricsOverride",
        width=width, height=900, deviceScaleFactor=1, mobile=width < 600,
    )
    tab.call(
        "Emulation.setEmulatedMedia",
        features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}],
    )
    tab.events.clear()
    tab.call("Page.navigate", url=page.as_uri())
    tab.wait_for("Page.loadEventFired")
    tab.call("Runtime.evaluate", expression="document.fonts.ready.then(() => 1)", awaitPromise=True)
    time.sleep(0.3)  # the theme's scripts settle (dark mode, the table of contents)
    result = tab.call("Runtime.evaluate", expression=MEASURE, returnByValue=True)
    report = PageReport(page.name, result.get("result", {}).get("value", {}))
    report.console_errors = console_errors(tab.events)
    return report


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            errors.append(str(text).splitlines()[0] if text else "an uncaught exception")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = params.get("args", [])
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
    return errors


def screenshot(tab: DevTools, path: Path, width: int, height: int) -> None:
    """The page from the top, as tall as it is (up to MAX_SHOT_HEIGHT): the viewport is
    made that tall, which lays the page out as a reader scrolling through it sees it."""
    tall = min(max(height, 600), MAX_SHOT_HEIGHT)
    tab.call(
        "Emulation.setDeviceMetricsOverride",
        width=width, height=tall, deviceScaleFactor=1, mobile=width < 600,
    )
    shot = tab.call("Page.captureScreenshot", format="jpeg", quality=80)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


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


def book_pages(html: Path) -> list[Path]:
    """The pages a reader meets: the landing page, every chapter, exercise and appendix page."""
    pages = [html / "intro.html", html / "grading.html"]
    for folder in (CHAPTERS, EXERCISES, APPENDIX):  # the built pages mirror the sources
        pages += sorted((html / folder).glob("*.html"))
    return [p for p in pages if p.is_file()]


def page_problems(html: Path, page: Path, report: PageReport) -> list[str]:
    name = str(page.relative_to(html))
    m = report.measures
    problems = [f"{name}: console error: {error}" for error in report.console_errors]
    notebook = page.parent.name in (CHAPTERS, EXERCISES) or page.name == "llm_server.html"
    if page.parent.name == CHAPTERS and not m.get("outputs"):
        problems.append(f"{name}: no executed code output on the page")
    for block in m.get("overflowing", []):
        problems.append(
            f"{name}: a {block['where']} block scrolls sideways by {block['by']} px at "
            f"{DESKTOP} px (it starts {block['line']!r})"
        )
    if m.get("split"):
        problems.append(f"{name}: {m['split']} output(s) split into one box per write")
    if m.get("nbval"):
        problems.append(f"{name}: {m['nbval']} NBVAL marker(s) visible on the page")
    for src in m.get("brokenImages", []):
        problems.append(f"{name}: image {src} did not load")
    if notebook:
        launch = set(m.get("launch", []))
        for wanted in ("Binder", "Colab"):
            if wanted not in launch:
                problems.append(f"{name}: no {wanted} launch button")
        if ".ipynb" not in m.get("downloads", []):
            problems.append(f"{name}: no .ipynb download")
    if page.parent.name == CHAPTERS:
        problems += _jupyterlite_problems(html, page, m)
    links = m.get("links", [])
    problems += [f"{name}: link to {href} leads nowhere" for href in broken_links(page, links)]
    if not links:
        problems.append(f"{name}: the page has no links (navigation did not render)")
    return problems


def _shoot(tab: DevTools, path: Path, width: int, report: PageReport) -> None:
    screenshot(tab, path, width, int(report.measures.get("height", 900)))


def _jupyterlite_problems(html: Path, page: Path, measures: dict[str, Any]) -> list[str]:
    """A chapter that can run in Pyodide offers JupyterLite, and the notebook is there."""
    from course.authoring.bookext import pyodide_blocker

    source = html.parent.parent / CHAPTERS / f"{page.stem}.py"  # _build/html -> the sources
    if not source.is_file():
        return []
    name = str(page.relative_to(html))
    offered = "JupyterLite" in measures.get("launch", [])
    if pyodide_blocker(source.read_text(encoding="utf-8")) is not None:
        return [f"{name}: offers JupyterLite, but its code cannot run there"] if offered else []
    problems = [] if offered else [f"{name}: can run in JupyterLite but has no button for it"]
    if not (html / "lite" / "files" / f"{page.stem}.ipynb").is_file():
        problems.append(f"{name}: lite/files/{page.stem}.ipynb is missing from the JupyterLite site")
    return problems


def _check_pages(html: Path, pages: list[Path], shots: Path) -> list[tuple[Path, list[str]]]:
    """Check ``pages`` in one browser of their own; each page with its problems."""
    found = []
    with browser_tab() as tab:
        for domain in ("Page", "Runtime", "Log"):
            tab.call(f"{domain}.enable")
        for page in pages:
            stem = str(page.relative_to(html).with_suffix("")).replace("/", "-")
            report = load(tab, page, DESKTOP)
            problems = page_problems(html, page, report)
            _shoot(tab, shots / f"{stem}-{DESKTOP}.jpg", DESKTOP, report)
            if report.measures.get("diagrams"):
                dark = load(tab, page, DESKTOP, dark=True)
                _shoot(tab, shots / f"{stem}-{DESKTOP}-dark.jpg", DESKTOP, dark)
            phone = load(tab, page, PHONE)
            if phone.measures.get("pageOverflow", 0) > 1:
                problems.append(
                    f"{page.relative_to(html)}: the page is wider than a {PHONE} px phone "
                    f"screen by {phone.measures['pageOverflow']} px"
                )
            _shoot(tab, shots / f"{stem}-{PHONE}.jpg", PHONE, phone)
            found.append((page, problems))
    return found


def check_book(html: Path, shots: Path | None = None) -> list[str]:
    """Problems a reader would meet in the built book; an empty list means none.
    Screenshots go to ``shots`` (default: ``_build/browser-check`` beside ``html``)."""
    if not (html / "index.html").is_file():
        return [f"no built book at {html}: run `make book` first"]
    if not (html / CHAPTERS).is_dir() or not any((html / CHAPTERS).glob("*.html")):
        return [f"no chapter pages under {html / CHAPTERS}"]
    shots = shots or html.parent / "browser-check"
    if shots.exists():
        shutil.rmtree(shots)
    pages = book_pages(html)
    # Two browsers, each with every other page: a page's load is partly waiting (the
    # theme settling), so two at once take little more than one on two cores.
    with ThreadPoolExecutor(max_workers=BROWSERS) as pool:
        found = pool.map(lambda share: _check_pages(html, share, shots),
                         [pages[i::BROWSERS] for i in range(BROWSERS)])
        by_page = {page: problems for part in found for page, problems in part}
    problems = [problem for page in pages for problem in by_page[page]]
    print(f"screenshots of {len(pages)} pages in {shots}")
    return problems
