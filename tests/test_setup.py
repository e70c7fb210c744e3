"""setup(): profile resolution, parameter validation, device choice, seeding."""

import os

import numpy as np
import pytest
import torch

from unrolling_lib import ParameterError, setup
from unrolling_lib.training.runtime import pick_device

DEFAULTS = {
    "quick": {"gammas": [0.0, 5.0], "steps": 400, "lr": 0.01, "scaling": "code"},
    "colab": {"gammas": [0.0, 1.0, 5.0], "steps": 7812, "lr": 0.01, "scaling": "code"},
    "paper": {"gammas": [0.0, 1.0, 5.0, 10.0], "steps": 15625, "lr": 0.01, "scaling": "code"},
}


def test_profile_values_and_overrides(capsys):
    cfg = setup("quick", defaults=DEFAULTS, steps=None, lr=1)
    assert cfg.steps == 400  # None keeps the profile's value
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)  # an int is accepted for a float
    assert cfg["gammas"] == [0.0, 5.0]
    # "auto" picks cuda, then mps, then cpu: what this machine has decides which, so the test asks it too
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    assert cfg.device.type == ("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    line = capsys.readouterr().out.strip()
    assert line == f"profile=quick · device={cfg.device} · data=digits or MNIST-5k (offline, in packages) · seed=0"
    assert setup("colab", defaults=DEFAULTS, verbose=False).steps == 7812


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "fast"}, "profile='fast' is not allowed; choose one of 'quick', 'colab', 'paper', 'smoke'"),
        ({"device": "tpu"}, "device='tpu' is not allowed"),
        ({"seed": -1}, "seed=-1 is not allowed"),
        ({"steps": "many"}, "steps='many' has the wrong type; expected int"),
        ({"steps": 2.5}, "steps=2.5 has the wrong type; expected int"),
        ({"gammas": ["a"]}, "gammas[0]='a' has the wrong type; expected float"),
        ({"batch": 3}, "batch is not a parameter of this chapter"),
    ],
)
def test_bad_parameters_name_themselves(kwargs, message):
    profile = kwargs.pop("profile", "quick")
    with pytest.raises(ParameterError) as err:
        setup(profile, defaults=DEFAULTS, verbose=False, **kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unavailable_device_is_refused_before_work():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ParameterError, match="device='cuda' is not available here"):
        pick_device("cuda")


def test_seeding_is_reproducible():
    setup("quick", seed=3, verbose=False)
    a = (torch.rand(3), np.random.rand(3))
    setup("quick", seed=3, verbose=False)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_setup_turns_progress_bars_off_only_in_a_book_build(monkeypatch):
    import plotly.io as pio

    from unrolling_lib.figures.render import BOOK_BUILD_ENV

    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)  # setup() switches it in a book build
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv(BOOK_BUILD_ENV, raising=False)
    setup("quick", verbose=False)
    assert "TQDM_DISABLE" not in os.environ
    monkeypatch.setenv(BOOK_BUILD_ENV, "1")
    setup("quick", verbose=False)
    assert os.environ["TQDM_DISABLE"] == "1"


def test_claim_checks_apply_at_every_profile_but_smoke(capsys) -> None:
    from unrolling_lib.book.profiles import SMOKE_NOTE

    for profile in ("quick", "colab", "paper"):
        assert setup(profile, verbose=False).checks_claims()
    assert capsys.readouterr().out == ""
    assert not setup("smoke", verbose=False).checks_claims()
    assert capsys.readouterr().out.strip() == SMOKE_NOTE
