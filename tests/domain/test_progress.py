import pytest
from hypothesis import given
from hypothesis import strategies as st

from veo_gateway.domain import progress
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


def test_tasks_seen_running_count_as_lower_bounds_until_three_finished() -> None:
    fast = "veo-3.1-fast-generate-preview"
    model = LatencyModel(Catalog())
    # Two seen running: not yet enough to go by.
    model.observe_running(fast, "a", 40)
    model.observe_running(fast, "b", 39)
    assert model.first_poll_after(fast) == 15.0
    # The third: none finished, the three oldest ran at least 38 s.
    model.observe_running(fast, "c", 38)
    model.observe_running(fast, "d", 20)
    assert model.first_poll_after(fast) == 0.9 * 38
    # A task seen again counts once, at the most it was seen to take.
    model.observe_running(fast, "c", 44)
    assert model.first_poll_after(fast) == 0.9 * 39
    # One finished in 30 s: with the two oldest still running, at least 30 s.
    model.observe(fast, 30)
    assert model.first_poll_after(fast) == 0.9 * 30
    # Never before the catalog's fastest.
    model.observe(fast, 5)
    assert model.first_poll_after(fast) == 15.0
    # Three finished: only what they took counts, as before.
    model.observe(fast, 50)
    assert model.first_poll_after(fast) == max(0.5, 0.9 * 5)
    # Other models learn nothing from these.
    assert (
        model.first_poll_after("veo-3.1-generate-preview")
        == Catalog()["veo-3.1-generate-preview"].min_latency
    )


def test_what_was_seen_running_long_ago_no_longer_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = "veo-3.1-fast-generate-preview"
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    model = LatencyModel(Catalog())
    for name, seconds in (("a", 90), ("b", 80), ("c", 70)):
        model.observe_running(fast, name, seconds)
    assert model.first_poll_after(fast) == 0.9 * 70
    clock[0] += 601
    assert model.first_poll_after(fast) == 15.0
