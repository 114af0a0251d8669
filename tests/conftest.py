import os
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    import torch
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"): item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available(): item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    "The local data root named by $MASKVIZ_DATA (CI sets it to shared/data)."
    root = os.environ.get("MASKVIZ_DATA")
    if not root: pytest.skip("MASKVIZ_DATA is not set: point it at a local data folder to run the data tests")
    return Path(root)
