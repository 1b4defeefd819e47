import pytest

from veo_gateway.domain.numbers import decimal


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("8", 8), ("0012", 12), ("9" * 19, 10**19 - 1)]
)
def test_ascii_digits_are_numbers(text: str, value: int) -> None:
    assert decimal(text) == value


@pytest.mark.parametrize(
    "text", ["", "٨", "８", "²", "5_0", " 5", "+5", "-5", "5.0", "1e3", "9" * 20]
)
def test_anything_else_is_not(text: str) -> None:
    assert decimal(text) is None
