import pytest

from manifpt.bench import SHAPES, sgemm_gflops


def pytest_addoption(parser):
    parser.addoption("--preset", default="small", choices=sorted(SHAPES), help="benchmark shapes (small runs in CI)")


def pytest_generate_tests(metafunc):
    if "shape" in metafunc.fixturenames:
        shapes = SHAPES[metafunc.config.getoption("--preset")]
        metafunc.parametrize("shape", shapes, ids=[f"{m}x{n}x{d}" for m, n, d in shapes])


@pytest.fixture(scope="session")
def sgemm():
    """This machine's sgemm rate, measured in the same run as the kernels it is compared with."""
    return sgemm_gflops()
