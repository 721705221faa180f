"""fnn._checks: each check's accepted values, and TypeError / ValueError with named messages."""

import re

import numpy as np
import pytest

from fnn._checks import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_positive,
    check_type,
    check_unit_interval,
)

# (check, value, expected result)
ACCEPTED = [
    (lambda v: check_int("n", v), 0, 0),
    (lambda v: check_int("n", v), -7, -7),
    (lambda v: check_int("n", v, minimum=1), 1, 1),
    (lambda v: check_int("n", v, minimum=1), np.int64(5), 5),
    (lambda v: check_int("n", v, minimum=0, maximum=3), np.uint8(3), 3),
    (lambda v: check_int("n", v, maximum=3), np.int32(-2), -2),
    (lambda v: check_float("x", v), 2, 2.0),
    (lambda v: check_float("x", v), float("inf"), float("inf")),
    (lambda v: check_float("x", v, low=0), 0, 0.0),
    (lambda v: check_float("x", v, low=0, high=1), np.float32(0.5), 0.5),
    (lambda v: check_float("x", v, low=0, high=1, open_high=False), 1.0, 1.0),
    (lambda v: check_float("x", v, low=0, high=1, open_low=True), np.int64(0) + 1e-9, 1e-9),
    (lambda v: check_float("x", v, high=1), np.float64(-3.0), -3.0),
    (lambda v: check_positive("lr", v), 1e-8, 1e-8),
    (lambda v: check_positive("lr", v, allow_zero=True), 0, 0.0),
    (lambda v: check_unit_interval("p", v), np.float16(0.0), 0.0),
    (lambda v: check_bool("b", v), True, True),
    (lambda v: check_bool("b", v), np.bool_(False), False),
    (lambda v: check_choice("c", v, ("a", "b")), "b", "b"),
    (lambda v: check_choice("c", v, ("a", "b")), np.str_("a"), "a"),
    (lambda v: check_choice("c", v, (None, True, False)), None, None),
    (lambda v: check_choice("c", v, (None, True, False)), np.bool_(True), True),
    (lambda v: check_choice("c", v, [1, 2]), np.int64(2), 2),
    (lambda v: check_choice("c", v, {"x": 1, "y": 2}), "y", "y"),
    (lambda v: check_type("t", v, str, "a name"), "relu", "relu"),
    (lambda v: check_type("t", v, int | float, "a number"), 2.5, 2.5),
]


@pytest.mark.parametrize("check,value,expected", ACCEPTED)
def test_accepted_values_come_back(check, value, expected):
    result = check(value)
    assert result == expected
    if isinstance(expected, bool):
        assert type(result) is bool
    elif isinstance(expected, int | float | str):
        assert type(result) is type(expected)  # NumPy scalars come back as Python ones


# (check, value, message): the wrong type, a TypeError naming the argument and the value.
WRONG_TYPE = [
    (lambda v: check_int("n", v), True, "n: expected an integer, got True"),
    (lambda v: check_int("n", v, minimum=1), np.bool_(True), "n: expected an integer >= 1, got "),
    (lambda v: check_int("n", v, minimum=1), 2.0, "n: expected an integer >= 1, got 2.0"),
    (lambda v: check_int("n", v, minimum=1), np.float64(3), "n: expected an integer >= 1, got "),
    (lambda v: check_int("n", v, maximum=9), "3", "n: expected an integer <= 9, got '3'"),
    (
        lambda v: check_int("n", v, minimum=0, maximum=3),
        None,
        "n: expected an integer in [0, 3], got None",
    ),
    (lambda v: check_float("x", v), False, "x: expected a number, got False"),
    (lambda v: check_float("x", v, low=0), "0.5", "x: expected a number >= 0, got '0.5'"),
    (
        lambda v: check_float("x", v, low=0, high=1),
        None,
        "x: expected a number in [0, 1), got None",
    ),
    (lambda v: check_float("x", v, high=1), 1j, "x: expected a number < 1, got 1j"),
    (lambda v: check_float("x", v, low=0), np.zeros(1), "x: expected a number >= 0, got "),
    (lambda v: check_positive("lr", v), "fast", "lr: expected a number > 0, got 'fast'"),
    (lambda v: check_positive("lr", v, allow_zero=True), None, "lr: expected a number >= 0"),
    (lambda v: check_unit_interval("p", v), True, "p: expected a number in [0, 1), got True"),
    (lambda v: check_bool("b", v), "False", "b: expected True or False, got 'False'"),
    (lambda v: check_bool("b", v), 0, "b: expected True or False, got 0"),
    (lambda v: check_bool("b", v), None, "b: expected True or False, got None"),
    (lambda v: check_choice("c", v, ("a", "b")), 1, "c: expected one of ['a', 'b'], got 1"),
    (lambda v: check_choice("c", v, ("a", "b")), None, "c: expected one of ['a', 'b'], got None"),
    (lambda v: check_choice("c", v, ("a", "b")), ["a"], "c: expected one of ['a', 'b'], got ['a']"),
    (
        lambda v: check_choice("c", v, (None, True, False)),
        "yes",
        "c: expected one of [None, True, False], got 'yes'",
    ),
    (
        lambda v: check_choice("c", v, (None, True, False)),
        1,
        "c: expected one of [None, True, False], got 1",
    ),
    (lambda v: check_choice("c", v, (0, 1)), True, "c: expected one of [0, 1], got True"),
    (lambda v: check_type("t", v, str, "a name"), 3, "t: expected a name, got int"),
    (
        lambda v: check_type("t", v, int | float, "a number"),
        None,
        "t: expected a number, got NoneType",
    ),
]


# (check, value, message): the right type out of range, a ValueError naming both.
OUT_OF_RANGE = [
    (lambda v: check_int("n", v, minimum=1), 0, "n: expected an integer >= 1, got 0"),
    (lambda v: check_int("n", v, minimum=1), np.int64(-1), "n: expected an integer >= 1, got "),
    (lambda v: check_int("n", v, maximum=3), 4, "n: expected an integer <= 3, got 4"),
    (
        lambda v: check_int("n", v, minimum=0, maximum=3),
        4,
        "n: expected an integer in [0, 3], got 4",
    ),
    (lambda v: check_int("n", v, minimum=0, maximum=3), -1, "in [0, 3], got -1"),
    (lambda v: check_float("x", v), float("nan"), "x: expected a number, got nan"),
    (lambda v: check_float("x", v, low=0), -0.5, "x: expected a number >= 0, got -0.5"),
    (lambda v: check_float("x", v, low=0, open_low=True), 0, "x: expected a number > 0, got 0"),
    (lambda v: check_float("x", v, high=1), 1.0, "x: expected a number < 1, got 1.0"),
    (lambda v: check_float("x", v, high=1, open_high=False), 2, "x: expected a number <= 1, got 2"),
    (lambda v: check_float("x", v, low=0, high=1), 1.0, "x: expected a number in [0, 1), got 1.0"),
    (
        lambda v: check_float("x", v, low=0, high=0.5, open_low=True, open_high=False),
        0.0,
        "x: expected a number in (0, 0.5], got 0.0",
    ),
    (
        lambda v: check_float("x", v, low=0, high=1),
        np.float32(-1),
        "x: expected a number in [0, 1), got ",
    ),
    (
        lambda v: check_float("x", v, low=1e-8, high=float("inf"), open_high=False),
        0.0,
        "x: expected a number in [1e-08, inf], got 0.0",
    ),
    (lambda v: check_float("x", v, low=0, high=1), float("nan"), "[0, 1), got nan"),
    (lambda v: check_positive("lr", v), 0.0, "lr: expected a number > 0, got 0.0"),
    (lambda v: check_positive("lr", v), float("nan"), "lr: expected a number > 0, got nan"),
    (lambda v: check_positive("lr", v, allow_zero=True), -1, "lr: expected a number >= 0, got -1"),
    (lambda v: check_unit_interval("p", v), 1, "p: expected a number in [0, 1), got 1"),
    (lambda v: check_choice("c", v, ("a", "b")), "c", "c: expected one of ['a', 'b'], got 'c'"),
    (lambda v: check_choice("c", v, [1, 2]), 3.0, "c: expected one of [1, 2], got 3.0"),
    (
        lambda v: check_choice("c", v, (None, True)),
        False,
        "c: expected one of [None, True], got False",
    ),
]


@pytest.mark.parametrize(
    "error,check,value,message",
    [(TypeError, *case) for case in WRONG_TYPE] + [(ValueError, *case) for case in OUT_OF_RANGE],
)
def test_rejected_values_raise_named_errors(error, check, value, message):
    """Wrong type -> TypeError, right type out of range -> ValueError, never the other one."""
    with pytest.raises((TypeError, ValueError)) as raised:
        check(value)
    assert type(raised.value) is error
    assert message in str(raised.value)
    # The argument's name and a colon first, then what was expected and the value given.
    assert re.fullmatch(r"\w+: expected .+, got .+", str(raised.value)), str(raised.value)
