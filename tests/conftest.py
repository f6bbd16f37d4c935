import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Test sets cached by stzoo.data go to a folder of this test session, never the user's ~/.cache."""
    import os

    old = os.environ.get("STZOO_CACHE")
    os.environ["STZOO_CACHE"] = str(tmp_path_factory.mktemp("stzoo-cache"))
    yield
    if old is None:
        os.environ.pop("STZOO_CACHE", None)
    else:
        os.environ["STZOO_CACHE"] = old


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_thread(request):
    """One intra-op thread for every test unless it is marked ``@pytest.mark.threads(n)``: tiny
    convolutions on a shared 2-core machine otherwise spend most of their time waiting on each other."""
    marker = request.node.get_closest_marker("threads")
    n_before = torch.get_num_threads()
    torch.set_num_threads(int(marker.args[0]) if marker else 1)
    yield
    torch.set_num_threads(n_before)


@pytest.fixture(scope="module")
def one_thread():
    """Kept for modules that still ask for it; the autouse ``_one_thread`` already does this."""
    yield


def pytest_configure(config):
    config.addinivalue_line("markers", "threads(n): run this test with n torch intra-op threads")
    config.addinivalue_line("markers", "hostile: a hostile-input case run in a limited subprocess")


def pytest_terminal_summary(terminalreporter):
    from helpers.hostile import RESULTS

    if RESULTS:
        clean = sum(r["clean"] for r in RESULTS)
        terminalreporter.write_line(
            f"hostile-input cases: {len(RESULTS)} tried, {clean} clean refusals, {len(RESULTS) - clean} leaks"
        )


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    """A folder of tiny fake MNIST IDX files (32 training and 16 test "digits"), for end-to-end runs."""
    from helpers.fake_mnist import write_fake_mnist

    return write_fake_mnist(tmp_path_factory.mktemp("fake_mnist"), seed=0, train=32, test=16)


@pytest.fixture
def load_script():
    """``load_script("name")``: the module ``scripts/name.py`` of the repository, imported from its file."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, root / "scripts" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
