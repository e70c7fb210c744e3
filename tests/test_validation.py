"""The ground layer's validators: one-line messages naming the parameter, pinned word for word."""

import numpy as np
import pytest

from unrolling_lib.validation import (
    ParameterError,
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_ints,
    check_keys,
    check_number,
    check_numbers,
    check_str,
)


def test_shared_validators():
    assert check_int("n", np.int64(3), 1) == 3 and isinstance(check_int("n", np.int64(3), 1), int)
    assert check_number("lr", 1) == 1.0 and check_number("gamma", 0, inclusive=True) == 0.0
    assert check_choice("mode", "a", ("a", "b")) == "a"
    for call, message in [
        (lambda: check_int("n", True, 1), "n=True is not allowed; use an int >= 1"),
        (lambda: check_int("n", 5, 1, 4), "n=5 is not allowed; use an int in [1, 4]"),
        (lambda: check_int("n", 2.0, 1), "n=2.0 is not allowed; use an int >= 1"),
        (lambda: check_number("lr", 0), "lr=0 is not allowed; use a finite number > 0"),
        (lambda: check_number("lr", float("nan")), "lr=nan is not allowed; use a finite number > 0"),
        (lambda: check_number("gamma", -1, inclusive=True), "gamma=-1 is not allowed; use a finite number >= 0"),
        (lambda: check_choice("mode", "c", ("a", "b")), "mode='c' is not allowed; choose one of 'a', 'b'"),
    ]:
        with pytest.raises(ParameterError) as err:
            call()
        assert str(err.value) == message


def test_list_bool_and_string_validators():
    assert check_numbers("gammas", [0, 5], inclusive=True) == [0.0, 5.0]
    assert check_numbers("gammas", 2.5, inclusive=True, scalar_ok=True) == [2.5]
    assert check_numbers("lrs", np.array([0.1, 0.2])) == [0.1, 0.2]
    assert check_number("tol", 0.5, high=1.0) == 0.5
    assert check_bool("noise_floor", np.bool_(True)) is True and check_str("model", "mlp") == "mlp"
    for call, message in [
        (lambda: check_numbers("gammas", [1.0, 1.0], inclusive=True, distinct=True),
         "gammas=[1.0, 1.0] is not allowed; use a non-empty list of distinct finite numbers >= 0"),
        (lambda: check_numbers("lrs", []), "lrs=[] is not allowed; use a non-empty list of finite numbers > 0"),
        (lambda: check_numbers("lrs", [0.1, -1]), "lrs=[0.1, -1] is not allowed; use a non-empty list of finite "
                                                  "numbers > 0"),
        (lambda: check_numbers("lrs", 0.1), "lrs=0.1 is not allowed; use a non-empty list of finite numbers > 0"),
        (lambda: check_number("tol", 1.0, high=1.0), "tol=1.0 is not allowed; use a finite number > 0 and < 1"),
        (lambda: check_bool("noise_floor", 1), "noise_floor=1 is not allowed; use True or False"),
        (lambda: check_str("model", 3), "model=3 is not allowed; use a string"),
        (lambda: check_choice("mode", [1], ("a", "b")), "mode=[1] is not allowed; choose one of 'a', 'b'"),
    ]:
        with pytest.raises(ParameterError) as err:
            call()
        assert str(err.value) == message


def test_int_lists_and_instances():
    assert check_ints("ns", np.array([2, 3]), 2) == [2, 3]
    assert check_instance("order", 3, (int, float)) == 3
    for call, message in [
        (lambda: check_ints("ns", [2, 1], 2), "ns[1]=1 is not allowed; use an int >= 2"),
        (lambda: check_ints("ns", 3, 2), "ns=3 is not allowed; use a non-empty list of ints"),
        (lambda: check_ints("ns", [2, 3, 2], 2, distinct=True), "ns=[2, 3, 2] is not allowed; use a non-empty list of "
                                                                  "distinct ints"),
        (lambda: check_ints("ns", [], 2, distinct=True), "ns=[] is not allowed; use a non-empty list of distinct ints"),
        (lambda: check_instance("order", "x", (list, tuple)), "order must be a list or tuple; got str"),
    ]:
        with pytest.raises(ParameterError) as err:
            call()
        assert str(err.value) == message


def test_section_keys():
    check_keys("§5", {"steps": 2, "lrs": [0.1]}, ("lrs", "steps"), kind="study")
    for params, message in [
        ({"steps": 2, "lrs": [0.1], "seed": 0}, "seed is not a parameter of the §5 study; known: lrs, steps"),
        ({"steps": 2}, "the §5 parameters lack lrs"),
    ]:
        with pytest.raises(ParameterError) as err:
            check_keys("§5", params, ("lrs", "steps"), kind="study")
        assert str(err.value) == message
