"""Figures: plotly builders per section of the paper, and what they share.

Each builder takes results (a tidy DataFrame or a result dataclass), returns a ``go.Figure`` and never calls
``show()``. :mod:`.render` makes figures render in the static, offline book; :mod:`.common` holds the template
and the frames slider; :mod:`.live` the ipywidgets of a live kernel. One module per section: :mod:`.taxonomy`
(§3), :mod:`.lemma1` (§4.1), :mod:`.symmetry` (§4.2), :mod:`.expansion` (§5), :mod:`.toy` (§6.2),
:mod:`.verification` (§8.3).
"""

from .live import live_session
from .render import in_book_build

__all__ = ["in_book_build", "live_session"]
