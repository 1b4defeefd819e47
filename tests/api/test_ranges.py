import pytest

from veo_gateway.api.ranges import MAX_RANGES, satisfiable_ranges
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
    satisfiable_ranges(header, 100)


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=500-, 100-"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        satisfiable_ranges(header, 100)
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
        satisfiable_ranges(header, 100)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", [(0, 1)]),
        ("bytes=0-", [(0, 100)]),
        ("bytes=-1", [(99, 100)]),
        ("bytes=-500", [(0, 100)]),
        ("bytes=50-10000", [(50, 100)]),
        ("bytes=200-300, 0-1", [(0, 2)]),
        ("bytes=20-29, 0-9", [(0, 10), (20, 30)]),
        # Overlapping and touching ranges are merged: a header cannot ask for more than the file.
        ("bytes=0-50, 10-20, 51-60", [(0, 61)]),
        ("bytes=" + ", ".join(["0-99"] * 1000), [(0, 100)]),
    ],
)
def test_ranges_served(header: str | None, expected: list[tuple[int, int]] | None) -> None:
    assert satisfiable_ranges(header, 100) == expected


def test_too_many_ranges_serve_the_whole_file() -> None:
    header = "bytes=" + ", ".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES + 1))
    assert satisfiable_ranges(header, 1000) is None
    header = "bytes=" + ", ".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES))
    assert len(satisfiable_ranges(header, 1000) or []) == MAX_RANGES
