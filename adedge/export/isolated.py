"""Run a step that calls into native code (OpenVINO, NNCF) in a child process of its own.

A crash there (a segmentation fault was seen in OpenVINO while NNCF compiled CFLOW's resnet18 graph
for INT8) would otherwise end adedge with no message and no clean-up; in a child it becomes one
clear error while the export around it removes what it started.
"""

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from adedge.errors import AdedgeError

T = TypeVar("T")


def run_isolated(doing: str, function: Callable[..., T], *args: object) -> T:
    """FUNCTION(*ARGS) in a fresh child process (spawned, so nothing of this one's native state is
    shared); its result or its AdedgeError comes back as if called here. DOING names the step in
    the error raised when the child dies."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(function, *args).result()
        except BrokenProcessPool:
            raise AdedgeError(
                f"OpenVINO crashed while {doing} (the process doing it died); nothing was written. "
                "Export fp32, fp16 or bf16 instead, or try another OpenVINO release"
            ) from None
