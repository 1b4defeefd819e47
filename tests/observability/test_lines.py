"""`LineWriter`: lines reach the stream off the caller's path, each once, in order."""

from __future__ import annotations

import io
import threading
import time

from veo_gateway.observability.lines import LineWriter


def wait_for_text(stream: io.StringIO, lines: int) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = stream.getvalue()
        if text.count("\n") >= lines:
            return text
        time.sleep(0.01)
    raise AssertionError(f"fewer than {lines} lines reached the stream: {stream.getvalue()!r}")


def test_lines_reach_the_stream_with_no_flush_from_the_writer() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream, interval=0.05)
    writer.write("one")
    writer.write("two")
    assert wait_for_text(stream, 2) == "one\ntwo\n"


def test_a_full_batch_wakes_the_thread_before_the_interval() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream, interval=3600, batch=3)
    for line in ("a", "b", "c"):
        writer.write(line)
    assert wait_for_text(stream, 3) == "a\nb\nc\n"


def test_past_the_cap_the_caller_writes_itself() -> None:
    stream = io.StringIO()
    # Neither the interval nor the batch comes before the cap: only the cap can write.
    writer = LineWriter(stream, interval=3600, batch=1000, cap=5)
    for n in range(4):
        writer.write(str(n))
    assert stream.getvalue() == ""
    writer.write("4")
    assert stream.getvalue() == "0\n1\n2\n3\n4\n"


def test_flush_writes_what_waits_at_once() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream, interval=3600)
    writer.write("waiting")
    writer.flush()
    assert stream.getvalue() == "waiting\n"
    writer.flush()
    assert stream.getvalue() == "waiting\n"


def test_lines_from_many_threads_arrive_once_each_and_in_each_threads_order() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream, interval=0.001, batch=7, cap=50)

    def write(name: str) -> None:
        for n in range(2000):
            writer.write(f"{name} {n}")

    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 8000
    for i in range(4):
        assert [line for line in lines if line.startswith(f"t{i} ")] == [
            f"t{i} {n}" for n in range(2000)
        ]
