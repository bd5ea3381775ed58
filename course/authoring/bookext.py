"""The course's Sphinx extension: what the book needs beyond Jupyter Book's settings.

- Graphviz's ``dot`` must be installed: the diagrams are drawn from text at build time,
  and a missing ``dot`` stops the build at once with the command that installs it.
- Every notebook page offers its ``.ipynb`` for download (the theme does this only for
  MyST markdown notebooks; the course's are percent ``.py`` files).
- Launch buttons: Binder opens the ``.ipynb`` that ``binder/postBuild`` makes; Colab opens
  the one the Pages workflow publishes on the ``notebooks`` branch; JupyterLite (Pyodide,
  in the browser) is offered for chapters whose code can run there, and the others say
  why not. Thebe is removed: the course does not use it, and its default configuration
  points at someone else's repository.
- Diagrams are ``<img>`` with their alt text, so readers with a screen reader get it.
- Tracebacks and other outputs do not show the build machine's paths.
"""

from __future__ import annotations

import ast
import html
import re
import shutil
from pathlib import Path
from typing import Any

from course.layout import BOOK_PAGES, CHAPTERS, Layout

COLAB_BRANCH = "notebooks"  # written by .github/workflows/book.yml
LITE_FOLDER = "lite_contents"  # under _build/, the notebooks JupyterLite serves

# Pyodide runs Python in the browser: no sockets, no subprocesses, no threads. A notebook
# that imports one of these (the course package starts the local HTTP server) cannot run.
NOT_IN_PYODIDE = {
    "course": "it uses the course package (its local LLM server, checker or tools)",
    "httpx": "it makes HTTP requests to a local server",
    "uvicorn": "it starts a web server",
    "socket": "it opens sockets",
    "subprocess": "it starts other processes",
    "multiprocessing": "it starts other processes",
    "concurrent": "it runs work in threads or processes",
    "pytest": "it runs pytest in another process",
}
PYODIDE_KERNEL = {"name": "python", "display_name": "Python (Pyodide)", "language": "python"}
THREAD_USE = re.compile(r"\bthreading\.Thread\(|\bto_thread\(|run_in_executor\(")

_INSTALL_CELL = """\
# Colab, Binder and other hosted notebooks: install the course package if it is missing.
import importlib.util

if importlib.util.find_spec("course") is None:
    %pip install --quiet "git+{repo}@{branch}"
"""


class DotMissingError(Exception):
    pass


def _code_and_imports(source: str) -> tuple[str, list[str]]:
    """A notebook's code (magics left out) and the modules it imports."""
    import jupytext

    notebook = jupytext.reads(source, fmt="py:percent")
    code = "\n".join(
        "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
    # Notebooks await at the top level; parse the way IPython compiles a cell.
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(code, "<notebook>", "exec", flags=flags, dont_inherit=True)
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
    return code, modules


def pyodide_blocker(source: str) -> str | None:
    """Why a notebook's code cannot run in Pyodide, or None if nothing stops it."""
    code, modules = _code_and_imports(source)
    for module in modules:
        reason = NOT_IN_PYODIDE.get(module.split(".")[0])
        if reason:
            return reason
    if THREAD_USE.search(code):
        return "it runs work in threads"
    return None


def _source(app: Any, pagename: str) -> Path | None:
    path = Path(app.env.doc2path(pagename))
    if path.suffix == ".py" and path.parent.name in BOOK_PAGES:
        return path
    return None


def _notebook_for_download(app: Any, source: Path) -> Any:
    """The page's notebook as a reader downloads it: no outputs, and for notebooks that
    need the course package, a first cell that installs it where it is missing."""
    import jupytext
    import nbformat

    text = source.read_text(encoding="utf-8")
    notebook = jupytext.reads(text, fmt="py:percent")
    if any(module.split(".")[0] == "course" for module in _code_and_imports(text)[1]):
        repo = app.config.html_theme_options.get("repository_url", "")
        branch = app.config.html_theme_options.get("repository_branch", "main")
        source_code = _INSTALL_CELL.format(repo=repo, branch=branch)
        cell = nbformat.v4.new_code_cell(source_code)  # type: ignore[no-untyped-call]
        cell.metadata["tags"] = ["remove-cell"]
        position = 1 if notebook.cells and notebook.cells[0].cell_type == "markdown" else 0
        notebook.cells.insert(position, cell)
    return notebook


def offer_ipynb(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Write ``_sources/<page>.ipynb`` so the theme's download menu offers it."""
    source = _source(app, pagename)
    if source is None:
        return
    import jupytext

    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(_notebook_for_download(app, source), target, fmt="ipynb")
    context["ipynb_source"] = f"{pagename}.ipynb"


def _lite_url(context: dict[str, Any], pagename: str) -> str:
    root = context["pathto"]("lite/lab/index.html", 1)
    return f"{root}?path={Path(pagename).name}.ipynb"


def adjust_launch_buttons(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    source = _source(app, pagename)
    if source is None:
        return
    blocker = pyodide_blocker(source.read_text(encoding="utf-8"))
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group["buttons"]:
            url = button.get("url", "")
            if button.get("text") == "Binder":
                button["url"] = re.sub(r"\.py$", ".ipynb", url)
            elif button.get("text") == "Colab":
                branch = context.get("theme_repository_branch") or "main"
                url = url.replace(f"/blob/{branch}/", f"/blob/{COLAB_BRANCH}/")
                button["url"] = re.sub(r"\.py$", ".ipynb", url)
        if blocker is None:
            group["buttons"].append(
                {
                    "type": "link",
                    "text": "JupyterLite",
                    "tooltip": "Run this chapter in your browser, nothing to install",
                    "icon": "_static/images/logo_jupyterlite.svg",
                    "url": _lite_url(context, pagename),
                    "label": "launch-jupyterlite",
                }
            )
    context["body"] = _with_run_note(context.get("body", ""), pagename, blocker, context)


def _with_run_note(body: str, pagename: str, blocker: str | None, context: dict[str, Any]) -> str:
    """A line under the page title that says where this notebook can run."""
    if not pagename.startswith("chapters/"):
        return body
    if blocker is None:
        note = (
            f'Run this chapter <a href="{html.escape(_lite_url(context, pagename))}">in your '
            "browser with JupyterLite</a>, with nothing to install, or with the launch and "
            "download buttons at the top of the page."
        )
    else:
        note = (
            "Run this chapter on your machine, on Binder or on Colab (the launch and download "
            f"buttons at the top of the page). It cannot run in the browser-only JupyterLite: "
            f"{html.escape(blocker)}."
        )
    paragraph = f'<p class="run-note">{note}</p>'
    return re.sub(r"(</h1>)", r"\1" + paragraph.replace("\\", "\\\\"), body, count=1)


_GRAPHVIZ_OBJECT = re.compile(
    r'<object data="(?P<src>[^"]+)" type="image/svg\+xml" class="(?P<cls>[^"]*)">\s*'
    r'<p class="warning">(?P<alt>.*?)</p></object>',
    re.DOTALL,
)


def diagrams_as_images(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """sphinx.ext.graphviz embeds SVG in ``<object>`` with the alt text as a fallback
    paragraph; an ``<img>`` gives it to screen readers and shows it when loading fails."""
    body = context.get("body")
    if body:
        context["body"] = _GRAPHVIZ_OBJECT.sub(
            lambda m: f'<img src="{m["src"]}" alt="{m["alt"]}" class="{m["cls"]}" />', body
        )


STACKED_TABLE_PAGES = ("appendix/cheat_sheet",)  # many-column tables read on a phone
_TABLE = re.compile(r"<table([^>]*)>(.*?)</table>", re.DOTALL)


def _stack_table(match: re.Match[str]) -> str:
    """Label each cell with its column's heading, so CSS can show a row as a card."""
    attributes, inner = match.group(1), match.group(2)
    headings = [
        html.escape(re.sub(r"<[^>]+>", "", h).strip(), quote=True)
        for h in re.findall(r"<th[^>]*>(.*?)</th>", inner, re.DOTALL)
    ]
    if not headings:
        return match.group(0)

    def label_row(row: re.Match[str]) -> str:
        cells = iter(headings)
        return re.sub(
            r"<td(?=[ >])", lambda _: f'<td data-label="{next(cells, "")}"', row.group(0)
        )

    inner = re.sub(r"<tr[^>]*>.*?</tr>", label_row, inner, flags=re.DOTALL)
    attributes = re.sub(r'class="([^"]*)"', r'class="\1 stacked"', attributes) \
        if "class=" in attributes else attributes + ' class="stacked"'
    return f"<table{attributes}>{inner}</table>"


def stack_tables(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """On a phone, the cheat sheet's four-column tables become one card per row."""
    if pagename in STACKED_TABLE_PAGES and context.get("body"):
        context["body"] = _TABLE.sub(_stack_table, context["body"])


def hide_build_paths(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Outputs name files by the build machine's absolute paths (tracebacks, temporary
    folders); readers see them relative to the course, or to site-packages."""
    body = context.get("body")
    if not body:
        return
    root = str(Path(app.srcdir).resolve())
    body = re.sub(re.escape(root) + r"/\.venv/lib/python3\.\d+/site-packages/", "site-packages/", body)
    body = body.replace(root + "/", "")
    # A traceback printed in a cell names the kernel's temporary file for that cell.
    body = re.sub(r"/tmp/ipykernel_\d+/\d+\.py", "&lt;notebook cell&gt;", body)
    context["body"] = body


def write_lite_contents(app: Any, error: Exception | None) -> None:
    """Before jupyterlite-sphinx builds the JupyterLite site, give it the notebooks
    that can run in Pyodide (chapters only: exercises need the course's checker)."""
    if error is not None:
        return
    import jupytext

    target = Layout(Path(app.srcdir)).build / LITE_FOLDER
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for source in Layout(Path(app.srcdir)).notebooks(CHAPTERS):
        if pyodide_blocker(source.read_text(encoding="utf-8")) is None:
            notebook = _notebook_for_download(app, source)
            # JupyterLite's kernel is "python" (Pyodide); naming it spares the reader a
            # "select kernel" dialog.
            notebook.metadata["kernelspec"] = PYODIDE_KERNEL
            jupytext.write(notebook, target / f"{source.stem}.ipynb", fmt="ipynb")


def build_lite_if_stale(app: Any, error: Exception | None) -> None:
    """jupyterlite-sphinx rebuilds the whole JupyterLite site (70 MB, 10-30 s) on every
    build. Build it only when it is missing or the JupyterLite packages or the set of
    notebooks changed; when only a notebook's text changed, copy the notebooks in."""
    if error is not None or app.builder.format != "html":
        return
    from importlib.metadata import version

    from jupyterlite_sphinx.jupyterlite_sphinx import JUPYTERLITE_DIR, jupyterlite_build  # type: ignore[import-untyped]

    contents = sorted((Layout(Path(app.srcdir)).build / LITE_FOLDER).glob("*.ipynb"))
    packages = ("jupyterlite-core", "jupyterlite-pyodide-kernel", "jupyterlite-sphinx")
    shape = ";".join([*(f"{p}=={version(p)}" for p in packages), *(c.name for c in contents)])
    site = Path(app.outdir) / JUPYTERLITE_DIR
    stamp = site / ".course-stamp"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == shape:
        _refresh_lite_files(site, contents)
        print("[course] JupyterLite site up to date; notebooks refreshed")
        return
    jupyterlite_build(app, error)
    stamp.write_text(shape, encoding="utf-8")


def _refresh_lite_files(site: Path, contents: list[Path]) -> None:
    """Put the current notebooks in the built site, and their sizes in its listing."""
    import json

    listing_file = site / "api" / "contents" / "all.json"
    listing = json.loads(listing_file.read_text(encoding="utf-8"))
    sizes = {}
    for notebook in contents:
        target = site / "files" / notebook.name
        if not target.is_file() or target.read_bytes() != notebook.read_bytes():
            shutil.copyfile(notebook, target)
        sizes[notebook.name] = target.stat().st_size
    for entry in listing.get("content", []):
        entry["size"] = sizes.get(entry.get("name"), entry.get("size"))
    listing_file.write_text(json.dumps(listing), encoding="utf-8")


def _take_over_lite_build(app: Any) -> None:
    from jupyterlite_sphinx.jupyterlite_sphinx import jupyterlite_build

    listeners = app.events.listeners["build-finished"]
    listeners[:] = [listener for listener in listeners if listener.handler is not jupyterlite_build]
    app.connect("build-finished", build_lite_if_stale)


def require_dot(app: Any) -> None:
    dot = app.config.graphviz_dot
    if shutil.which(dot) is None:
        raise DotMissingError(
            f"Graphviz's `{dot}` is not installed, and the book's diagrams are drawn with it "
            "at build time. Install it (Debian/Ubuntu: `sudo apt-get install graphviz`, "
            "macOS: `brew install graphviz`) and build again."
        )


def _remove_thebe(app: Any) -> None:
    """Jupyter Book always loads sphinx-thebe, which adds its scripts and a configuration
    for an example repository to every page. Unhook it."""
    for listeners in app.events.listeners.values():
        listeners[:] = [
            listener
            for listener in listeners
            if getattr(listener.handler, "__module__", "").split(".")[0] != "sphinx_thebe"
        ]
    _drop_css(app, "thebe")


def _drop_css(app: Any, fragment: str) -> None:
    app.registry.css_files[:] = [
        (name, attributes) for name, attributes in app.registry.css_files if fragment not in str(name)
    ]


def _theme_defaults(app: Any, config: Any) -> None:
    # An empty default mode makes the theme's script log an error on a reader's first visit.
    config.html_context.setdefault("default_mode", "auto")


def setup(app: Any) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.graphviz")
    app.setup_extension("sphinx_thebe")
    _remove_thebe(app)
    app.setup_extension("jupyterlite_sphinx")
    # jupyterlite-sphinx links a web font for its "try examples" buttons, which the course
    # does not use: the book makes no request to other sites.
    _drop_css(app, "fonts.googleapis.com")
    _take_over_lite_build(app)
    app.connect("config-inited", _theme_defaults)
    app.connect("builder-inited", require_dot)
    app.connect("html-page-context", offer_ipynb, priority=500)  # before the theme's menus (501)
    app.connect("html-page-context", adjust_launch_buttons, priority=502)
    app.connect("html-page-context", diagrams_as_images, priority=502)
    app.connect("html-page-context", hide_build_paths, priority=502)
    app.connect("html-page-context", stack_tables, priority=502)
    app.connect("build-finished", write_lite_contents, priority=400)  # before jupyterlite-sphinx's
    return {"parallel_read_safe": True, "parallel_write_safe": True}
