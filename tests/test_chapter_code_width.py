"""Every line of every chapter's code cells fits a code cell of the built book at a 1280-pixel window.

No browser and no build needed: the limit, CODE_LINE_LIMIT, is measured in tests/test_browser.py, so a line
that would scroll sideways fails here as soon as it is written.
"""

import json
from pathlib import Path

from browser_support import CODE_LINE_LIMIT, width_exemption

from unrolling_lib.book import chapters as book

ROOT = Path(__file__).resolve().parents[1]


def test_chapter_code_lines_fit_the_column():
    too_long = []
    for path in book.chapters(ROOT):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for number, cell in enumerate(cells, 1):
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or width_exemption(source, ROOT):
                continue  # markdown wraps itself; see INSTALL_CELL_EXEMPT for the other
            too_long += [f"{path.name} cell {number}: {len(line)} chars: {line.strip()[:50]}"
                         for line in source.splitlines() if len(line) > CODE_LINE_LIMIT]
    assert not too_long, (f"{len(too_long)} code lines longer than {CODE_LINE_LIMIT} characters (wrap them):\n"
                          + "\n".join(too_long))
