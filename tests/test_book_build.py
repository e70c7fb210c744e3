"""The build's timing table, the parameterised chapter copies nbval runs, and the chapters' time budgets."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from unrolling_lib.book import chapters as book
from unrolling_lib.book.build import BUDGETS, TIMES_FILE, chapter_times, parameterize_chapters, times_table
from unrolling_lib.book.profiles import PROFILES
from unrolling_lib.book.runner import notebook_parameters
from unrolling_lib.validation import ParameterError

ROOT = Path(__file__).resolve().parents[1]


def test_chapter_times_are_read_from_the_build_log() -> None:
    log = (f"reading sources... [ 50%] book/lemma1\n{ROOT}/book/lemma1.ipynb: Executed notebook in 10.02 seconds "
           "[mystnb]\nother line\nbook/verification.ipynb: Executed notebook in 94.5 seconds [mystnb]\n")
    times = chapter_times(log, ROOT)
    assert times == {"book/lemma1.ipynb": 10.02, "book/verification.ipynb": 94.5}
    table = times_table(times, 120)
    assert table.splitlines()[1].startswith("book/verification.ipynb") and "79%" in table


def test_parameterized_copies_inject_the_profile_and_leave_the_chapters_alone(tmp_path) -> None:
    before = {p: p.read_bytes() for p in book.chapters(ROOT)}
    written = parameterize_chapters(tmp_path / "smoke", {"profile": "smoke"}, ROOT)
    assert sorted(p.name for p in written) == sorted(p.name for p in before)
    assert {p: p.read_bytes() for p in before} == before  # the chapters themselves are untouched
    for path in written:
        nb = nbformat.read(path, as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        params = next(i for i, t in enumerate(tags) if "parameters" in t)
        injected = nb.cells[params + 1]
        assert "injected-parameters" in injected.metadata.tags and 'profile = "smoke"' in injected.source
    with pytest.raises(ParameterError, match="profile='tiny'"):
        parameterize_chapters(tmp_path / "bad", {"profile": "tiny"}, ROOT)


def test_every_section_has_a_smoke_profile_and_every_chapter_names_the_four() -> None:
    from unrolling_lib.experiments.verification import SENSITIVITY_BLOCKS, VERIFICATION_DEFAULTS
    from unrolling_lib.theory.expansion import EXPANSION_DEFAULTS
    from unrolling_lib.theory.lemma1 import LEMMA1_DEFAULTS
    from unrolling_lib.theory.symmetry import SYMMETRY_DEFAULTS
    from unrolling_lib.theory.toy import TOY_DEFAULTS

    for table in (VERIFICATION_DEFAULTS, EXPANSION_DEFAULTS, LEMMA1_DEFAULTS, SYMMETRY_DEFAULTS, TOY_DEFAULTS):
        assert set(table) == set(PROFILES) and set(table["smoke"]) == set(table["quick"])
    assert set(SENSITIVITY_BLOCKS) == set(PROFILES)
    for chapter in book.chapters(ROOT):
        help_text = notebook_parameters(chapter)["profile"]["help"]
        assert all(name in help_text for name in PROFILES), chapter.name


def _times(name: str) -> dict:
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{name} is written by the build; run `make book` (or `make test`) first")
    return json.loads(path.read_text())


def test_every_chapter_executes_within_three_times_its_budget_at_the_quick_profile() -> None:
    times = _times(str(TIMES_FILE))["chapters"]
    assert {Path(name).name for name in times} == {p.name for p in book.chapters(ROOT)}
    slow = {name: s for name, s in times.items() if s > 3 * BUDGETS["quick"]}
    assert not slow, f"over 3 × {BUDGETS['quick']:g} s: {slow}"
