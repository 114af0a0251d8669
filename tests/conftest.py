import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # quiet offline


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


@pytest.fixture
def one_thread():
    "Tiny models: one torch thread, since a second one waits on the busier core of a shared 2-core machine."
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def browser():
    "Headless Chromium driven by Playwright, shared by the browser tests; skipped without Chromium unless MASKVIZ_REQUIRE_BROWSER=1."
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} not found: install it with `apt-get install chromium` to run the browser tests"
        if os.environ.get("MASKVIZ_REQUIRE_BROWSER") == "1": pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
