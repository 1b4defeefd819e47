from hypothesis import given
from hypothesis import strategies as st

from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.progress import LatencyModel, estimate_progress


@given(st.floats(0.1, 1000), st.lists(st.floats(0, 5000), min_size=2, max_size=30))
def test_progress_never_goes_backwards_and_stays_below_100(
    expected: float, times: list[float]
) -> None:
    values = [estimate_progress(t, expected) for t in sorted(times)]
    assert values == sorted(values)
    assert all(1 <= v <= 99 for v in values)


def test_progress_moves() -> None:
    assert estimate_progress(0, 60) < estimate_progress(30, 60) < estimate_progress(60, 60)
    assert estimate_progress(60, 60) == 90
    assert estimate_progress(10_000, 60) == 99


def test_latency_is_learned_from_finished_tasks() -> None:
    model = LatencyModel(Catalog())
    assert model.expected("veo-3.1-fast-generate-preview") == 45.0
    assert model.first_poll_after("veo-3.1-fast-generate-preview") == 15.0
    for seconds in (20, 30, 40):
        model.observe("veo-3.1-fast-generate-preview", seconds)
    assert model.expected("veo-3.1-fast-generate-preview") == 30
    assert model.first_poll_after("veo-3.1-fast-generate-preview") == 18


def test_a_fixed_first_poll_wins_over_the_catalog_and_what_was_learned() -> None:
    model = LatencyModel(Catalog(), first_poll=0.25)
    assert model.first_poll_after("veo-3.1-fast-generate-preview") == 0.25
    for seconds in (20, 30, 40):
        model.observe("veo-3.1-fast-generate-preview", seconds)
    assert model.first_poll_after("veo-3.1-fast-generate-preview") == 0.25
    # Progress still follows what tasks take.
    assert model.expected("veo-3.1-fast-generate-preview") == 30
