import pytest

from manifpt.bench import SHAPES, machine_info, machine_lines, sgemm_gflops

_SGEMM: dict[str, float] = {}


def pytest_addoption(parser):
    parser.addoption("--preset", default="small", choices=sorted(SHAPES), help="benchmark shapes (small runs in CI)")


def pytest_generate_tests(metafunc):
    if "shape" in metafunc.fixturenames:
        shapes = SHAPES[metafunc.config.getoption("--preset")]
        metafunc.parametrize("shape", shapes, ids=[f"{m}x{n}x{d}" for m, n, d in shapes])


def _sgemm() -> dict[str, float]:
    if not _SGEMM:
        _SGEMM.update(sgemm_gflops())
    return _SGEMM


def pytest_report_header(config):
    """The machine the numbers come from: CPU, ISA path, cache sizes, blocking, and the sgemm rate of this run."""
    return machine_lines(machine_info(), _sgemm())


@pytest.fixture(scope="session")
def sgemm():
    """This machine's sgemm rate, measured in the same run as the kernels it is compared with."""
    return _sgemm()


@pytest.fixture(scope="session")
def preset(request):
    """The shapes preset: "full" also checks the speed targets (a noisy CI machine runs "small": correctness only)."""
    return request.config.getoption("--preset")
