"""Root plugin: how long each executed chapter took under nbval, checked against its budget.

``make test`` executes papermill copies of the chapters at the smoke profile (``_build/smoke``). The seconds
of every cell of a notebook (its kernel start included) are added up, printed as a table at the end, written
to ``_build/smoke_times.json``, and the run fails when a chapter takes more than three times its budget.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from unrolling_lib.book.build import BUDGETS, times_table

ROOT = Path(__file__).resolve().parent
_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _seconds[path] += report.duration


def _over_budget() -> dict[str, float]:
    return {name: s for name, s in _seconds.items() if s > 3 * BUDGETS["smoke"] and "smoke" in name}


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    terminalreporter.write_sep("-", "chapter execution under nbval (seconds, kernel start included)")
    terminalreporter.write_line(times_table(dict(_seconds), BUDGETS["smoke"]))
    for name, seconds in _over_budget().items():
        terminalreporter.write_line(f"FAILED budget: {name} took {seconds:.1f} s, more than 3 × "
                                    f"{BUDGETS['smoke']:g} s")


def pytest_sessionfinish(session, exitstatus):
    if not _seconds:
        return
    target = ROOT / "_build" / "smoke_times.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"budget_seconds": BUDGETS["smoke"], "chapters": dict(_seconds)}, indent=1))
    if _over_budget() and session.exitstatus == 0:
        session.exitstatus = 1
