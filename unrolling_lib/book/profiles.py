"""Run profiles (quick / colab / paper) and a chapter's one set-up call: its parameters, device and seed.

Every chapter starts with one call::

    cfg = setup(profile, seed=seed, device=device, defaults=SOME_CHAPTER_DEFAULTS, gammas=gammas)

``defaults`` maps each profile to the chapter's own parameter values; a keyword override that is not
``None`` replaces the profile's value after it has been checked against the default's type. Anything
that does not fit stops the chapter before any work, with one line naming the parameter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..figures.render import in_book_build, use_book_renderer
from ..training.runtime import pick_device, seed_everything
from ..validation import ParameterError, check_choice, check_int

__all__ = ["CLAIM_PROFILES", "PROFILES", "SMOKE_NOTE", "Profile", "RunConfig", "setup"]


@dataclass(frozen=True)
class Profile:
    """A preset: where it runs, on what data, with what budget."""

    name: str
    data: str
    model: str
    where: str


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", data="digits or MNIST-5k (offline, in packages)", model="small CNNs",
                     where="any CPU, offline"),
    "colab": Profile("colab", data="CIFAR-10/100 (downloaded)", model="ResNet-18 / VGG-19",
                     where="one GPU"),
    "paper": Profile("paper", data="CIFAR-10/100 (downloaded)", model="ResNet-18 / VGG-19",
                     where="GPUs, the paper's full grids"),
    "smoke": Profile("smoke", data="tiny subsets of the quick profile's data", model="the quick profile's",
                     where="any CPU, seconds: the same code path, for CI"),
}
# Where a chapter's claims are stated and checked; at "smoke" only what holds at any scale is checked.
CLAIM_PROFILES = ("quick", "colab", "paper")
SMOKE_NOTE = ("smoke profile: the claims of this cell are stated at the quick profile; here only what holds at "
              "any scale is checked (shapes, finite values, invariants)")


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

    def checks_claims(self) -> bool:
        """Whether a chapter's claim checks apply at this profile (:data:`CLAIM_PROFILES`). At ``"smoke"``
        (tiny subsets and step counts, for CI) it prints :data:`SMOKE_NOTE` once per call and returns False,
        and the cell checks only what holds at any scale::

            if cfg.checks_claims():
                assert ...  # the claim, at the quick profile's scale
        """
        if self.profile in CLAIM_PROFILES:
            return True
        print(SMOKE_NOTE)
        return False


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
        ok = isinstance(value, (list, tuple))  # an empty list is a value rule: the section's checker says why
        if ok and default:
            value = [_check_type(f"{name}[{i}]", v, default[0]) for i, v in enumerate(value)]
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ParameterError(
            f"{name}={value!r} has the wrong type; expected {type(default).__name__} like {default!r}"
        )
    return value


def setup(
    profile: str = "quick",
    *,
    seed: int = 0,
    device: str = "auto",
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    data: str | None = None,
    check: Callable[..., dict[str, Any]] | None = None,
    verbose: bool = True,
    **overrides: Any,
) -> RunConfig:
    """Validate a chapter's parameters, resolve the profile, pick the device, seed everything.

    ``defaults[profile]`` holds the chapter's values for that profile; each keyword in ``overrides``
    must name one of them, and a value of ``None`` means "use the profile's value". ``check``: the section's
    own checker (e.g. :func:`unrolling_lib.experiments.verification.check_verification_params`), called with
    every resolved value; a value the library would refuse stops the chapter here, with the library's own
    one-line message, before any work. ``data`` describes the chapter's data when it is not the profile's (e.g.
    a toy problem).
    Prints one line (profile, device, data, seed) unless ``verbose=False``.
    """
    check_choice("profile", profile, tuple(PROFILES))
    seed = check_int("seed", seed, 0)
    chapter = dict((defaults or {}).get(profile, {}))
    if defaults is not None and profile not in defaults:
        raise ParameterError(f"profile={profile!r} has no values for this chapter; choose one of {list(defaults)}")
    for name, value in overrides.items():
        if name not in chapter:
            raise ParameterError(f"{name} is not a parameter of this chapter; known: {', '.join(sorted(chapter))}")
        if value is not None:
            chapter[name] = _check_type(name, value, chapter[name])
    if check is not None:
        chapter = check(**chapter)
    dev = pick_device(device)
    seed_everything(seed)
    if in_book_build():  # a static page cannot animate a progress bar: tqdm's own switch turns them off
        os.environ["TQDM_DISABLE"] = "1"
    use_book_renderer()
    cfg = RunConfig(profile=profile, seed=seed, device=dev, data=data or PROFILES[profile].data, params=chapter)
    if verbose:
        print(cfg.summary())
    return cfg
