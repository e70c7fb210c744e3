"""Run profiles (quick / colab / paper), parameter validation, device choice and seeding.

Every chapter starts with one call::

    cfg = setup(profile, seed=seed, device=device, defaults=SOME_CHAPTER_DEFAULTS, gammas=gammas)

``defaults`` maps each profile to the chapter's own parameter values; a keyword override that is not
``None`` replaces the profile's value after it has been checked against the default's type. Anything
that does not fit stops the chapter before any work, with one line naming the parameter.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .plotting import use_book_renderer

__all__ = ["PROFILES", "Profile", "RunConfig", "ParameterError", "setup", "pick_device", "seed_everything",
           "check_choice", "check_int", "check_number"]


class ParameterError(ValueError):
    """A chapter or library parameter that is not allowed. The message names it and what is allowed."""


@dataclass(frozen=True)
class Profile:
    """A preset: where it runs, on what data, with what budget."""

    name: str
    data: str
    model: str
    where: str


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", data="digits (sklearn, offline)", model="small CNN", where="any CPU, offline"),
    "colab": Profile("colab", data="CIFAR-10/100 (downloaded)", model="ResNet-18 / VGG-19",
                     where="one GPU"),
    "paper": Profile("paper", data="CIFAR-10/100 (downloaded)", model="ResNet-18 / VGG-19",
                     where="GPUs, the paper's full grids"),
}

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class RunConfig:
    """What ``setup`` resolved: profile, device, seed and the chapter's parameter values."""

    profile: str
    seed: int
    device: torch.device
    data: str
    params: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"RunConfig has no parameter {name!r}; known: {sorted(params)}")

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def summary(self) -> str:
        return f"profile={self.profile} · device={self.device} · data={self.data} · seed={self.seed}"


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` must be one of ``allowed``; returns it."""
    if value not in allowed:
        raise ParameterError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")
    return value


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` must be an int (Python or NumPy, not bool) in ``[low, high]``; returns it as a Python int."""
    allowed = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name}={value!r} is not allowed; use {allowed}")
    if value < low or (high is not None and value > high):
        raise ParameterError(f"{name}={value!r} is not allowed; use {allowed}")
    return int(value)


def check_number(name: str, value: Any, *, low: float = 0.0, inclusive: bool = False) -> float:
    """``value`` must be a finite real number above ``low`` (or equal to it with ``inclusive``); returns a float."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value)) and (float(value) >= low if inclusive else float(value) > low)
    if not ok:
        relation = ">=" if inclusive else ">"
        raise ParameterError(f"{name}={value!r} is not allowed; use a finite number {relation} {low:g}")
    return float(value)


def _check_type(name: str, value: Any, default: Any) -> Any:
    """Check an override against the type of the profile's default; ints are accepted for floats."""
    if default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple)) and len(value) > 0
        if ok and default:
            value = [_check_type(f"{name}[{i}]", v, default[0]) for i, v in enumerate(value)]
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ParameterError(
            f"{name}={value!r} has the wrong type; expected {type(default).__name__} like {default!r}"
        )
    return value


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    check_choice("device", device, DEVICES)
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise ParameterError(f"device={device!r} is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def setup(
    profile: str = "quick",
    *,
    seed: int = 0,
    device: str = "auto",
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    data: str | None = None,
    verbose: bool = True,
    **overrides: Any,
) -> RunConfig:
    """Validate a chapter's parameters, resolve the profile, pick the device, seed everything.

    ``defaults[profile]`` holds the chapter's values for that profile; each keyword in ``overrides``
    must name one of them, and a value of ``None`` means "use the profile's value". ``data`` describes the
    chapter's data when it is not the profile's (e.g. a toy problem).
    Prints one line (profile, device, data, seed) unless ``verbose=False``.
    """
    check_choice("profile", profile, tuple(PROFILES))
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"seed={seed!r} is not allowed; use a non-negative int")
    chapter = dict((defaults or {}).get(profile, {}))
    if defaults is not None and profile not in defaults:
        raise ParameterError(f"profile={profile!r} has no values for this chapter; choose one of {list(defaults)}")
    for name, value in overrides.items():
        if name not in chapter:
            raise ParameterError(f"{name} is not a parameter of this chapter; known: {', '.join(sorted(chapter))}")
        if value is not None:
            chapter[name] = _check_type(name, value, chapter[name])
    dev = pick_device(device)
    seed_everything(seed)
    use_book_renderer()
    cfg = RunConfig(profile=profile, seed=seed, device=dev, data=data or PROFILES[profile].data, params=chapter)
    if verbose:
        print(cfg.summary())
    return cfg
