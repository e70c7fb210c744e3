"""The book around the library: its chapters, its offline assets, its repository links.

- ``find_root`` / ``chapters``: the chapters listed in ``_toc.yml``, in order.
- ``stage_assets``: copy plotly.js and MathJax from installed packages into the book, so the built HTML
  requests nothing outside its own files.
- ``sync_chapters``: rewrite each chapter's "Open in Colab" link and install cell from the repository named
  in ``_config.yml`` (the one place a fork changes).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml

__all__ = ["Repository", "find_root", "toc_entries", "chapters", "stage_assets", "repository", "colab_url",
           "install_source", "sync_chapters", "chapter_problems", "chapter_extras", "install_cell_extras"]

INSTALL_MARK = "google.colab"
COLAB_LINK = re.compile(r"\[Open in Colab\]\([^)]*\)")


@dataclass(frozen=True)
class Repository:
    url: str
    branch: str
    path_to_book: str

    @property
    def slug(self) -> str:
        """``owner/name`` of a GitHub repository url."""
        return self.url.rstrip("/").removesuffix(".git").split("github.com/")[-1]


def find_root(start: Path | str | None = None) -> Path:
    """The folder that holds ``_toc.yml``: ``start`` or one of its parents."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _toc.yml in {here} or its parents; run from inside the book's repository")


def _toc_files(node: object) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        if "file" in node:
            found.append(node["file"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                found += _toc_files(child)
    return found


def toc_entries(root: Path | str | None = None) -> list[Path]:
    """Every page in ``_toc.yml``, in reading order; an entry with no file on disk keeps a ``.ipynb`` suffix."""
    base = find_root(root)
    toc = yaml.safe_load((base / "_toc.yml").read_text())
    paths = []
    for name in [toc["root"], *_toc_files(toc)]:
        path = base / name
        if not path.suffix:
            found = [path.with_suffix(s) for s in (".ipynb", ".md") if path.with_suffix(s).exists()]
            path = found[0] if found else path.with_suffix(".ipynb")
        paths.append(path)
    return paths


def chapters(root: Path | str | None = None) -> list[Path]:
    """Every notebook chapter in ``_toc.yml``, in reading order (markdown pages are left out)."""
    return [p for p in toc_entries(root) if p.suffix == ".ipynb"]


def stage_assets(root: Path | str | None = None) -> list[Path]:
    """Copy plotly.min.js into ``book/_static`` and MathJax's es5 bundle into ``book/_mathjax/mathjax``."""
    import mathjax  # the django-static-mathjax package
    import plotly

    base = find_root(root)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    mathjax_es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    static = base / "book" / "_static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy2(plotly_js, static / "plotly.min.js")
    target = base / "book" / "_mathjax" / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(mathjax_es5, target)
    return [static / "plotly.min.js", target]


def repository(root: Path | str | None = None) -> Repository:
    """The repository named in ``_config.yml``."""
    config = yaml.safe_load((find_root(root) / "_config.yml").read_text())
    repo = config.get("repository") or {}
    if not repo.get("url"):
        raise ValueError("_config.yml: repository.url is missing")
    return Repository(repo["url"], repo.get("branch", "main"), repo.get("path_to_book", "") or "")


def colab_url(repo: Repository, chapter: str) -> str:
    """The Colab address of a chapter (``chapter`` relative to the repository root)."""
    return f"https://colab.research.google.com/github/{repo.slug}/blob/{repo.branch}/{chapter}"


def install_source(repo: Repository, extras: Sequence[str] = ()) -> str:
    """What pip installs on Colab: this package from the configured repository and branch, with ``extras``
    (e.g. ``["text"]``) when the chapter needs them."""
    package = f"unrolling-lib[{','.join(extras)}]" if extras else "unrolling-lib"
    return f"{package} @ git+{repo.url.rstrip('/')}.git@{repo.branch}"


def chapter_extras(nb: Any) -> tuple[str, ...]:
    """The package extras a chapter needs beyond the library (its notebook metadata ``unrolling.extras``)."""
    extras = nb.metadata.get("unrolling", {}).get("extras", ())
    return (extras,) if isinstance(extras, str) else tuple(extras)


def install_cell_extras(source: str) -> tuple[str, ...]:
    """The extras an install cell's source names (``unrolling-lib[text]`` → ``("text",)``)."""
    found = re.search(r"unrolling-lib\[([A-Za-z0-9_,-]+)\]", source)
    return tuple(found.group(1).split(",")) if found else ()


def install_cell_source(repo: Repository, extras: Sequence[str] = ()) -> str:
    """Every chapter's first code cell: on Colab it installs :func:`install_source`, elsewhere nothing. The
    source is a variable (IPython expands ``{SOURCE}`` in the magic) so every line fits a code column."""
    package, source = install_source(repo, extras).split(" @ ", 1)
    return (
        "# On Colab, install the library that goes with this book;\n"
        "# elsewhere this cell does nothing.\n"
        "import sys\n\n"
        f'SOURCE = "{source}"\n'
        f'if "{INSTALL_MARK}" in sys.modules:\n'
        f'    %pip install --quiet "{package} @ {{SOURCE}}"'
    )


def _relative(path: Path, base: Path) -> str:
    return path.resolve().relative_to(base).as_posix()


def sync_chapters(root: Path | str | None = None) -> list[Path]:
    """Rewrite every chapter's Colab link and install cell from ``_config.yml``; return those changed."""
    base = find_root(root)
    repo = repository(base)
    changed = []
    for path in chapters(base):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        link = f"[Open in Colab]({colab_url(repo, _relative(path, base))})"
        for cell in nb.cells:
            if cell.cell_type == "markdown" and COLAB_LINK.search(cell.source):
                cell.source = COLAB_LINK.sub(lambda _m, new=link: new, cell.source)
            elif cell.cell_type == "code" and INSTALL_MARK in cell.source:
                cell.source = install_cell_source(repo, chapter_extras(nb))
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def chapter_problems(path: Path, root: Path | str | None = None) -> list[str]:
    """What a chapter lacks of the conventions in book/CONTRIBUTING.md (an empty list: none)."""
    base = find_root(root)
    repo = repository(base)
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    problems = []
    first = cells[0] if cells else None
    link = f"[Open in Colab]({colab_url(repo, _relative(path, base))})"
    if first is None or first.cell_type != "markdown" or not first.source.lstrip().startswith("# "):
        problems.append("the first cell is not a markdown cell with a '# ' title")
    elif link not in first.source:
        problems.append(f"the first cell lacks the Colab link {link}")
    elif "§" not in first.source:
        problems.append("the first cell does not name the paper's section (§)")
    code = [c for c in cells if c.cell_type == "code"]
    if not any(c.source == install_cell_source(repo, chapter_extras(nb)) for c in code):
        problems.append("no install cell matching _config.yml (run: python -m unrolling_lib sync-chapters)")
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        problems.append(f"expected one cell tagged 'parameters', found {len(params)}")
    else:
        src = params[0].source
        for needed in ('profile: str = "quick"', "seed: int = 0", 'device: str = "auto"'):
            if needed not in src:
                problems.append(f"the parameters cell lacks `{needed}`")
    if not any("setup(" in c.source for c in code):
        problems.append("no set-up call (unrolling_lib.setup)")
    if any(c.get("outputs") for c in code):
        problems.append("committed with outputs")
    return problems
