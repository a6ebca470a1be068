"""Shared fixtures: hypothesis profiles, devices, Triton interpreter, doctest namespace.

Hypothesis profiles: ``dev`` (default, fast), ``ci`` (thorough but bounded; chosen when
``CI`` is set) and ``thorough``. Choose with ``--hypothesis-profile NAME`` or
``GRAPHVISION_HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os

# Triton kernels run on the CPU in its interpreter. The variable must be set before Triton is
# imported, so it is set here, before graphvision is imported, when no GPU is present.
if "TRITON_INTERPRET" not in os.environ:
    try:
        import torch as _torch

        if not _torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"
    except Exception:  # pragma: no cover
        pass
# Triton reads the variable when it is imported: import it now, so that a test switching the
# variable off (to check the error on a CPU without the interpreter) cannot leave this process
# with compiled-mode kernels that the interpreter tests after it could not run.
try:
    import triton  # noqa: F401
except ImportError:  # pragma: no cover - Triton is optional
    pass

import pytest
import torch
from hypothesis import HealthCheck, settings

# Scripts run in subprocesses by the tests, not test modules: never import them in the test
# process (pytest --doctest-modules would, and the AOT driver patches Triton when installed).
collect_ignore = ["tests/ops/_aot_compile_driver.py"]

# Under pytest-xdist every worker gets one intra-op thread: with `-n 2` on a 2-core machine, two
# workers with two threads each oversubscribe the cores and tiny graph ops run ~35x slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("GRAPHVISION_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _devices() -> list[str]:
    env = os.environ.get("GRAPHVISION_TEST_DEVICE")
    if env:
        return [d.strip() for d in env.split(",") if d.strip()]
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


@pytest.fixture(params=_devices())
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every available device (``GRAPHVISION_TEST_DEVICE`` overrides, e.g. ``cpu,cuda``)."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace: dict) -> None:
    import graphvision

    doctest_namespace["torch"] = torch
    doctest_namespace["graphvision"] = graphvision
