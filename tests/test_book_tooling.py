"""The book's structure: table of contents, chapter conventions, Colab links, the chapter runner."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from unrolling_lib.book import chapters as book
from unrolling_lib.book.runner import (
    ChapterFailed,
    list_chapters,
    new_run_folder,
    notebook_parameters,
    parameters_of,
    parse_value,
    run_chapter,
)
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


def test_a_chapter_that_names_extras_installs_them_on_colab(tmp_path):
    for name in ("_toc.yml", "_config.yml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "taxonomy.ipynb").write_text((ROOT / "book" / "taxonomy.ipynb").read_text())
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/taxonomy\n")
    path = tmp_path / "book" / "taxonomy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.metadata["unrolling"] = {"extras": ["text"]}
    nbformat.write(nb, path)
    problems = book.chapter_problems(path, tmp_path)
    assert any("install cell" in p for p in problems)  # the cell still installs the package without the extra
    assert book.sync_chapters(tmp_path) == [path]
    cell = next(c.source for c in nbformat.read(path, as_version=4).cells if "google.colab" in c.source)
    assert '%pip install --quiet "unrolling-lib[text] @ {SOURCE}"' in cell
    assert book.install_cell_extras(cell) == ("text",) and book.install_cell_extras("import sys") == ()
    assert book.chapter_problems(path, tmp_path) == []
    repo = book.repository(tmp_path)
    assert book.install_source(repo, ["text", "bench"]).startswith("unrolling-lib[text,bench] @ git+")
    assert book.chapter_extras(nbformat.read(ROOT / "book" / "text.ipynb", as_version=4)) == ("text",)
    nb.metadata["unrolling"] = {"extras": "text"}  # one name, not a list: not read letter by letter
    assert book.chapter_extras(nb) == ("text",)


def test_taxonomy_cites_only_known_works():
    bib = (ROOT / "book" / "references.bib").read_text()
    for key in taxonomy.works()["cite"]:
        assert "{" + key + "," in bib


def test_list_chapters_shows_parameters():
    text = list_chapters(ROOT)
    assert "book/taxonomy.ipynb" in text
    assert "profile        str                    = 'quick'" in text
    assert "gammas         Optional[list]         = None" in text  # an optional parameter is listed too


def test_parameters_are_read_whatever_their_annotation():
    source = ('profile: str = "quick"  # quick | colab | paper\n'
              "gammas: list | None = None  # SD strengths γ\n"
              "import math\n"
              "steps = 3\n")
    found = parameters_of(source)
    assert list(found) == ["profile", "gammas", "steps"]
    assert found["gammas"] == {"type": "list | None", "default": "None", "help": "SD strengths γ"}
    assert found["profile"]["help"] == "quick | colab | paper" and found["steps"]["type"] == "any"


def test_every_chapter_parameter_is_reachable():
    """Each name of a chapter's parameters cell is known to the runner, so `-p name value` is accepted."""
    for path in book.chapters(ROOT):
        cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        import ast

        names = {n.target.id for n in ast.parse(cell.source).body if isinstance(n, ast.AnnAssign)}
        assert set(notebook_parameters(path)) == names, path.name
        import papermill

        assert set(papermill.inspect_notebook(str(path))) == names, path.name  # papermill-driven tools see them


@pytest.mark.parametrize(("text", "value"), [("3", 3), ("0.5", 0.5), ("[0, 5]", [0, 5]), ("None", None),
                                             ("colab", "colab")])
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_run_chapter_writes_notebook_and_provenance(tmp_path):
    folder = run_chapter(ROOT / "book" / "taxonomy.ipynb", "quick", {"seed": 2}, out_root=tmp_path)
    assert folder.parent == tmp_path / "taxonomy" and folder.name.startswith("quick-")
    run = json.loads((folder / "run.json").read_text())
    assert run["parameters"] == {"profile": "quick", "seed": 2} and run["status"] == "finished"
    assert run["git_commit"] is None or len(run["git_commit"]) == 40
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
    assert out.stderr.strip() == "error: profile='huge' is not allowed; choose one of quick, colab, paper, smoke"


def _scratch_book(root: Path, code: str) -> Path:
    """A one-chapter book under ``root`` whose chapter runs ``code`` after a parameters cell."""
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/x\n")
    (root / "_config.yml").write_text("execute:\n  timeout: 600\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile: str = "quick"\nseed: int = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    path = root / "book" / "x.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_bad_input_error_inside_a_chapter_is_one_line_and_recorded(tmp_path):
    path = _scratch_book(tmp_path / "repo", "from unrolling_lib.validation import check_int\n"
                                            "check_int('seed', -1, 0)")
    with pytest.raises(ChapterFailed) as err:
        run_chapter(path, "quick", {}, out_root=tmp_path / "runs")
    assert err.value.bad_input and "\n" not in str(err.value)
    # cell [3]: the execution count, after the parameters cell and the one papermill injects
    assert "x.ipynb, cell [3]: ParameterError: seed=-1 is not allowed; use an int >= 0 (full log:" in str(err.value)
    (folder,) = (tmp_path / "runs" / "x").iterdir()
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "failed" and "seed=-1" in run["error"]
    out = subprocess.run([sys.executable, "-m", "unrolling_lib", "run-chapter", str(path), "--out",
                          str(tmp_path / "runs")], capture_output=True, text=True)
    last = out.stderr.strip().splitlines()[-1]  # before it only papermill's progress bar and kernel notices
    assert out.returncode == 2 and last.startswith("error: x.ipynb, cell [3]: ParameterError: seed=-1")
    assert "Traceback" not in out.stderr


def test_a_cell_past_the_timeout_fails_the_run_and_names_the_limit(tmp_path):
    path = _scratch_book(tmp_path / "repo", "import time\ntime.sleep(60)")
    with pytest.raises(ChapterFailed, match="x.ipynb: a cell ran past the 3 s limit") as err:
        run_chapter(path, "quick", {}, out_root=tmp_path / "runs", timeout=3)
    assert not err.value.bad_input


def test_run_requests_that_contradict_themselves_are_refused(tmp_path):
    chapter = ROOT / "book" / "taxonomy.ipynb"
    with pytest.raises(ParameterError, match="-p profile 'paper' contradicts --profile 'quick'"):
        run_chapter(chapter, "quick", {"profile": "paper"}, out_root=tmp_path)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ParameterError, match="out=.*a_file' is a file; give a folder"):
        run_chapter(chapter, "quick", {}, out_root=tmp_path / "a_file")


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    folders = [new_run_folder(tmp_path, "quick") for _ in range(3)]
    assert len(set(folders)) == 3 and all(f.is_dir() for f in folders)
    assert all(f.name.startswith("quick-") for f in folders)


def test_resume_runs_again_in_the_same_folder_and_keeps_its_checkpoints(tmp_path):
    code = ("from unrolling_lib.book.results import run_dir\n"
            "mark = run_dir() / 'done.txt'\n"
            "mark.write_text(str(int(mark.read_text()) + 1 if mark.exists() else 1))")
    path = _scratch_book(tmp_path / "repo", code)
    folder = run_chapter(path, "quick", {"seed": 1}, out_root=tmp_path / "runs")
    again = run_chapter(path, "quick", {"seed": 1}, resume=folder)
    assert again == folder and (folder / "done.txt").read_text() == "2"  # the first run's work was found
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"
    with pytest.raises(ParameterError, match="holds a run of x.ipynb with parameters"):
        run_chapter(path, "quick", {"seed": 2}, resume=folder)
    with pytest.raises(ParameterError, match="is not a run folder"):
        run_chapter(path, "quick", {"seed": 1}, resume=tmp_path)


@pytest.fixture(scope="module")
def digits_loaded():
    """The digits loaded once (the first load imports scikit-learn's datasets)."""
    from unrolling_lib.data import load_digits_dataset

    return load_digits_dataset()


def test_monitor_bench_prints_ratios_products_and_errors(digits_loaded, capsys):
    from unrolling_lib.book.bench import BENCHES, bench_monitor, run_bench

    bench_monitor(repeats=1, steps=50)
    out = capsys.readouterr().out
    for row in ("training alone", "σ every 50 ", "σ every 200 ", "tol 1e-2", "lockstep", "cost model"):
        assert row in out
    every_50 = next(line for line in out.splitlines() if line.startswith("with the monitor, σ every 50 "))
    assert float(every_50.split()[-1]) <= 1e-2  # the largest σ error against ARPACK
    assert set(BENCHES) >= {"hessian", "monitor"}
    with pytest.raises(ParameterError, match="not a benchmark"):
        run_bench("nope")
