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


def test_a_model_not_seen_finishing_puts_young_tasks_off_by_at_most_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = "veo-3.1-fast-generate-preview"
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    model = LatencyModel(Catalog())
    # Fewer than three seen running: no bound yet.
    model.observe_running(fast, "a", 40)
    model.observe_running(fast, "b", 39)
    assert model.cold_wait(fast, "young", 10, cap=10) == 0
    model.observe_running(fast, "c", 38)
    # The three oldest ran at least 38 s: a task of 33 s waits until 0.9 of theirs, both
    # growing: 33 + d = 0.9 * (38 + d), d = 12, capped at 10.
    assert model.cold_wait(fast, "young", 33, cap=10) == 10
    assert model.cold_wait(fast, "young", 33, cap=60) == pytest.approx(12)
    # As old as they are, or a task among them: no wait.
    assert model.cold_wait(fast, "a", 40, cap=10) == 0
    assert model.cold_wait(fast, "peer", 36, cap=10) == 0
    # Seen 5 s ago, they are 5 s older now: 33 + d = 0.9 * (43 + d), d = 57.
    clock[0] += 5
    assert model.cold_wait(fast, "young", 33, cap=60) == pytest.approx(57)
    # One finished (forgotten as running), one failed: the bound goes with them.
    model.observe(fast, 45, "a")
    model.forget_running(fast, "b")
    assert model.cold_wait(fast, "young", 33, cap=60) == 0
    # Not seen again for a minute: no longer counted.
    for name in ("d", "e"):
        model.observe_running(fast, name, 50)
    assert model.cold_wait(fast, "young", 10, cap=60) > 0
    clock[0] += 61
    assert model.cold_wait(fast, "young", 10, cap=60) == 0


def test_three_finished_or_a_fixed_first_poll_end_the_cold_wait() -> None:
    fast = "veo-3.1-fast-generate-preview"
    model = LatencyModel(Catalog())
    for name, seconds in (("a", 90), ("b", 80), ("c", 70)):
        model.observe_running(fast, name, seconds)
    assert model.cold_wait(fast, "young", 10, cap=10) == 10
    for seconds in (60, 61, 62):
        model.observe(fast, seconds)
    assert model.cold_wait(fast, "young", 10, cap=10) == 0
    fixed = LatencyModel(Catalog(), first_poll=1.0)
    for name, seconds in (("a", 90), ("b", 80), ("c", 70)):
        fixed.observe_running(fast, name, seconds)
    assert fixed.cold_wait(fast, "young", 10, cap=10) == 0
