"""A step in native code runs in a child process: its result and its errors come back, its crash is one clear error."""

import ctypes
import operator

import pytest

from adedge.errors import AdedgeError
from adedge.export.isolated import run_isolated
from adedge.train.calibration import check_false_reject


def test_the_childs_result_comes_back():
    assert run_isolated("adding", operator.add, 2, 3) == 5


def test_the_childs_own_error_comes_back_unchanged():
    with pytest.raises(AdedgeError, match="--false-reject must be from 1e-06 up to .not including. 0.5, got 0.7"):
        run_isolated("checking", check_false_reject, 0.7)


def test_a_crash_in_native_code_becomes_one_clear_error():
    with pytest.raises(AdedgeError) as raised:
        run_isolated("quantising to INT8", ctypes.string_at, 0)  # reads address 0: a segmentation fault in the child
    message = str(raised.value)
    assert message.startswith("OpenVINO crashed while quantising to INT8") and "\n" not in message
