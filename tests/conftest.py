"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Test tensors are tiny: one thread avoids OpenMP spin on a busy 2-core machine and keeps
    timings steady. Restored after each module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (2 CPUs, small object store) for the whole test session,
    started by the first test that asks for it and shut down at the end."""
    import builtins
    import os

    import ray

    os.environ["RAY_TQDM_PATCH_PRINT"] = "0"  # else Ray may swap builtins.print for all tests
    before = builtins.print
    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    assert builtins.print is before, "Ray replaced builtins.print"
