import pytest

from veo_gateway.api.ranges import check_range
from veo_gateway.errors import InvalidArgument, RangeNotSatisfiable


@pytest.mark.parametrize(
    "header",
    [
        None,
        "bytes=0-0",
        "bytes=0-",
        "bytes=99-",
        "bytes=-1",
        "bytes=-500",
        "bytes=50-10000",
        "bytes=0-1, 5-6",
        "BYTES=1-2",
        "bytes=200-300, 0-1",
    ],
)
def test_satisfiable(header: str | None) -> None:
    check_range(header, 100)


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=500-, 100-"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        check_range(header, 100)
    assert info.value.headers == {"Content-Range": "bytes */100"}


@pytest.mark.parametrize(
    "header",
    [
        "",
        "bytes",
        "bytes=",
        "items=0-1",
        "bytes=a-b",
        "bytes=5-1",
        "bytes=-",
        "bytes=1",
        # Digits that are not ASCII: int() reads the first, and raised on the second (a 500).
        "bytes=٠-٥",
        "bytes=²-",
        "bytes=-²",
    ],
)
def test_malformed(header: str) -> None:
    with pytest.raises(InvalidArgument):
        check_range(header, 100)
