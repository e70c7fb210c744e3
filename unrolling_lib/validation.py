"""Parameter validation: one error type and one helper per kind of value (the ground layer).

Every public entry point of the library checks its arguments here, once, before any work starts. Each
helper takes the name the caller used, so the one-line message names that parameter, what is allowed and
what was received::

    >>> check_int("steps", 0, 1)
    Traceback (most recent call last):
    ...
    unrolling_lib.validation.ParameterError: steps=0 is not allowed; use an int >= 1

This module imports nothing of the package (see ``book/architecture.md``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ParameterError",
    "check_bool",
    "check_choice",
    "check_instance",
    "check_int",
    "check_ints",
    "check_keys",
    "check_number",
    "check_numbers",
    "check_str",
]


class ParameterError(ValueError):
    """A parameter that is not allowed. The message names it, what is allowed and what was received."""


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` must be one of ``allowed``; returns it."""
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value asked of a dict's keys
        ok = False
    if not ok:
        raise ParameterError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")
    return value


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` must be an int (Python or NumPy, not bool) in ``[low, high]``; returns it as a Python int."""
    allowed = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name}={value!r} is not allowed; use {allowed}")
    if value < low or (high is not None and value > high):
        raise ParameterError(f"{name}={value!r} is not allowed; use {allowed}")
    return int(value)


def check_number(name: str, value: Any, *, low: float = 0.0, inclusive: bool = False,
                 high: float | None = None) -> float:
    """``value`` must be a finite real number above ``low`` (or equal to it with ``inclusive``) and, with
    ``high``, below ``high``; returns it as a float."""
    ok = _is_real(value) and math.isfinite(float(value))
    ok = ok and (float(value) >= low if inclusive else float(value) > low)
    ok = ok and (high is None or float(value) < high)
    if not ok:
        relation = ">=" if inclusive else ">"
        upper = f" and < {high:g}" if high is not None else ""
        raise ParameterError(f"{name}={value!r} is not allowed; use a finite number {relation} {low:g}{upper}")
    return float(value)


def check_numbers(name: str, values: Any, *, low: float = 0.0, inclusive: bool = False,
                  distinct: bool = False, scalar_ok: bool = False) -> list[float]:
    """``values`` must be a non-empty list (or tuple, or 1-D array) of numbers accepted by
    :func:`check_number`, pairwise different with ``distinct``; a single number counts as a list of one
    with ``scalar_ok``. Returns them as a list of floats."""
    if scalar_ok and _is_real(values):
        values = [values]
    relation = ">=" if inclusive else ">"
    allowed = f"use a non-empty list of{' distinct' if distinct else ''} finite numbers {relation} {low:g}"
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or not values:
        raise ParameterError(f"{name}={values!r} is not allowed; {allowed}")
    try:
        out = [check_number(name, v, low=low, inclusive=inclusive) for v in values]
    except ParameterError:
        raise ParameterError(f"{name}={values!r} is not allowed; {allowed}") from None
    if distinct and len(set(out)) != len(out):
        raise ParameterError(f"{name}={values!r} is not allowed; {allowed}")
    return out


def check_ints(name: str, values: Any, low: int, high: int | None = None, *,
               distinct: bool = False) -> list[int]:
    """``values`` must be a non-empty list (or tuple, or 1-D array) of ints accepted by :func:`check_int`,
    pairwise different with ``distinct``; the message of a bad entry names it (``ns[1]=0 …``). Returns Python
    ints."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    allowed = f"use a non-empty list of{' distinct' if distinct else ''} ints"
    if not isinstance(values, (list, tuple)) or not values:
        raise ParameterError(f"{name}={values!r} is not allowed; {allowed}")
    out = [check_int(f"{name}[{i}]", v, low, high) for i, v in enumerate(values)]
    if distinct and len(set(out)) != len(out):
        raise ParameterError(f"{name}={values!r} is not allowed; {allowed}")
    return out


def check_keys(section: str, params: Mapping[str, Any], known: Iterable[str], *, kind: str = "experiment") -> None:
    """``params`` must hold exactly the parameters ``known`` of a section (a ``<SECTION>_DEFAULTS`` profile):
    an unknown one is refused first (``retries is not a parameter of the §8.3 experiment; known: …``), then
    any that are missing (``the §8.3 parameters lack …``)."""
    known = sorted(known)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParameterError(f"{unknown[0]} is not a parameter of the {section} {kind}; known: {', '.join(known)}")
    missing = sorted(set(known) - set(params))
    if missing:
        raise ParameterError(f"the {section} parameters lack {', '.join(missing)}")


def check_instance(name: str, value: Any, types: type | tuple[type, ...]) -> Any:
    """``value`` must be an instance of ``types``; returns it."""
    if not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise ParameterError(f"{name} must be a {wanted}; got {type(value).__name__}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` must be ``True`` or ``False``; returns it."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name}={value!r} is not allowed; use True or False")
    return bool(value)


def check_str(name: str, value: Any) -> str:
    """``value`` must be a string; returns it."""
    if not isinstance(value, str):
        raise ParameterError(f"{name}={value!r} is not allowed; use a string")
    return value
