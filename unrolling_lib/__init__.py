"""unrolling_lib: the library behind the Unrolling SGD book (Thudi et al., "Unrolling SGD: Understanding
Factors Influencing Machine Unlearning").

One module per concept of the paper, in layers (``book/architecture.md``): ground (:mod:`.validation`,
:mod:`.params`), inputs (:mod:`.data`, :mod:`.models`), numerics (:mod:`.losses`, :mod:`.curvature`,
:mod:`.unlearning_error`, :mod:`.unlearning`, :mod:`.metrics`, :mod:`.privacy`), :mod:`.training`, the
sections (:mod:`.theory`, :mod:`.experiments`), :mod:`.figures` and the book's tooling (:mod:`.book`).
A chapter starts with ``unrolling_lib.setup`` (profiles, device, seeding).

The names below are loaded on first use, so ``import unrolling_lib.losses`` pulls in neither plotly nor
the book's tooling.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
__all__ = ["PROFILES", "ParameterError", "RunConfig", "setup", "__version__"]

_LAZY = {"PROFILES": "book.profiles", "RunConfig": "book.profiles", "setup": "book.profiles",
         "ParameterError": "validation"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'unrolling_lib' has no attribute {name!r}")
