"""The book's structure: table of contents, chapter conventions, Colab links, the chapter runner."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from unrolling_lib.book import chapters as book
from unrolling_lib.book.runner import list_chapters, parse_value, run_chapter
from unrolling_lib.theory import taxonomy
from unrolling_lib.validation import ParameterError

ROOT = Path(__file__).resolve().parents[1]


def test_every_notebook_is_in_the_toc_and_every_entry_exists():
    in_toc = {p.resolve() for p in book.toc_entries(ROOT)}
    missing = [p for p in in_toc if not p.exists()]
    assert not missing, f"_toc.yml names pages that do not exist: {missing}"
    on_disk = {p.resolve() for p in (ROOT / "book").glob("*.ipynb")}
    assert on_disk - in_toc == set(), f"notebooks missing from _toc.yml: {on_disk - in_toc}"
    assert len(book.chapters(ROOT)) >= 1


@pytest.mark.parametrize("chapter", book.chapters(ROOT), ids=lambda p: p.name)
def test_chapter_follows_the_conventions(chapter):
    assert book.chapter_problems(chapter, ROOT) == []


def test_committed_chapters_carry_no_outputs():
    tracked = subprocess.run(["git", "ls-files", "book/*.ipynb"], cwd=ROOT, capture_output=True, text=True)
    for name in tracked.stdout.split():
        nb = nbformat.read(ROOT / name, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} has outputs"


def test_problems_are_reported(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: bad\n")
    (tmp_path / "_config.yml").write_text(yaml.safe_dump({"repository": {"url": "https://github.com/a/b"}}))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", outputs=[
        nbformat.v4.new_output("stream", text="1")])])
    nbformat.write(nb, tmp_path / "bad.ipynb")
    problems = book.chapter_problems(tmp_path / "bad.ipynb", tmp_path)
    assert "committed with outputs" in problems
    assert any("parameters" in p for p in problems) and any("install cell" in p for p in problems)


def test_sync_rewrites_links_from_the_config(tmp_path):
    for name in ("_toc.yml", "_config.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "book").mkdir()
    src = ROOT / "book" / "taxonomy.ipynb"
    (tmp_path / "book" / "taxonomy.ipynb").write_text(src.read_text())
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/taxonomy\n")
    assert book.sync_chapters(tmp_path) == []  # the committed chapter is already in sync
    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    config["repository"] = {"url": "https://github.com/someone/fork", "branch": "dev"}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    assert len(book.sync_chapters(tmp_path)) == 1
    text = (tmp_path / "book" / "taxonomy.ipynb").read_text()
    assert "colab.research.google.com/github/someone/fork/blob/dev/book/taxonomy.ipynb" in text
    assert "git+https://github.com/someone/fork.git@dev" in text
    assert book.chapter_problems(tmp_path / "book" / "taxonomy.ipynb", tmp_path) == []


def test_taxonomy_cites_only_known_works():
    bib = (ROOT / "book" / "references.bib").read_text()
    for key in taxonomy.works()["cite"]:
        assert "{" + key + "," in bib


def test_list_chapters_shows_parameters():
    text = list_chapters(ROOT)
    assert "book/taxonomy.ipynb" in text
    assert 'profile        str                    = "quick"' in text


@pytest.mark.parametrize(("text", "value"), [("3", 3), ("0.5", 0.5), ("[0, 5]", [0, 5]), ("None", None),
                                             ("colab", "colab")])
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_run_chapter_writes_notebook_and_provenance(tmp_path):
    folder = run_chapter(ROOT / "book" / "taxonomy.ipynb", "quick", {"seed": 2}, out_root=tmp_path)
    assert folder.parent == tmp_path / "taxonomy" and folder.name.startswith("quick-")
    run = json.loads((folder / "run.json").read_text())
    assert run["parameters"] == {"profile": "quick", "seed": 2}
    executed = nbformat.read(folder / "taxonomy.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "profile=quick" in printed and "seed=2" in printed


def test_run_chapter_refuses_unknown_parameters_before_work(tmp_path):
    with pytest.raises(ParameterError, match="gamma is not a parameter of taxonomy.ipynb"):
        run_chapter(ROOT / "book" / "taxonomy.ipynb", "quick", {"gamma": 1}, out_root=tmp_path)
    assert not any(tmp_path.iterdir())
    out = subprocess.run([sys.executable, "-m", "unrolling_lib", "run-chapter", "book/taxonomy.ipynb",
                          "--profile", "huge"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: profile='huge' is not allowed; choose one of quick, colab, paper"
