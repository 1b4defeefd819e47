"""Object storage: `python bench/run.py --only storage` (moto's S3 server on loopback).

In one run, beside the bare Starlette FileResponse baseline of bench/run.py:

- a 200 MB video to 20 clients at once, streamed by the gateway from S3 storage: RSS growth of
  the gateway, slowest first byte, throughput as a ratio of bare's;
- the same with VEO_GATEWAY_CONTENT_REDIRECT=true (curl follows the 307 to the store);
- the time to stream 200 MB into the store as the worker does (multipart upload, completed at
  the end), which is what a finished video adds between upstream done and `completed`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
from run import (
    FAST,
    KEY,
    VIDEO_BYTES,
    create_task,
    free_port,
    parallel_downloads,
    start_baseline,
    start_emulator,
    start_gateway,
    wait_done,
    wait_up,
)

BUCKET = "bench"
PREFIX = "gateway"
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


def start_s3(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _upload(size: int) -> float:
    """Seconds to stream `size` bytes into the store through the gateway's own storage."""
    from veo_gateway.media.storage import open_storage

    storage = open_storage(f"s3://{BUCKET}/{PREFIX}-upload", data_dir=Path(tempfile.mkdtemp()))
    block = os.urandom(1 << 20)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    started = time.perf_counter()
    await storage.save_video("video_bench", chunks())
    return time.perf_counter() - started


def run(size: int = VIDEO_BYTES) -> list[str]:
    """The report's lines; `size`: bytes of the video (200 MB; smaller for a quick try)."""
    work = Path(tempfile.mkdtemp(prefix="veo-bench-storage-"))
    video = work / "big.mp4"
    with video.open("wb") as handle:
        for _ in range(size // (1 << 20)):
            handle.write(os.urandom(1 << 20))
    s3_port, base_port, emu_port = free_port(), free_port(), free_port()
    endpoint = f"http://127.0.0.1:{s3_port}"
    os.environ.update({**AWS, "AWS_ENDPOINT_URL": endpoint})
    s3 = start_s3(s3_port)
    baseline = start_baseline(base_port, video, work)
    emulator_url = f"http://127.0.0.1:{emu_port}"
    emulator = start_emulator(emu_port, work / "emulator")
    processes = [s3, baseline, emulator]
    lines: list[str] = []
    try:
        wait_up(f"{endpoint}/")
        client = boto3.client("s3", endpoint_url=endpoint, region_name=AWS["AWS_REGION"])
        client.create_bucket(Bucket=BUCKET)
        gateways = {}
        for name, redirect in (("streamed", "false"), ("redirect", "true")):
            port = free_port()
            settings = {
                "VEO_GATEWAY_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}-{name}",
                "VEO_GATEWAY_CONTENT_REDIRECT": redirect,
            }
            process = start_gateway(
                port, work / f"data-{name}", emulator_url, work / f"{name}.log", settings
            )
            processes.append(process)
            gateways[name] = (f"http://127.0.0.1:{port}", process)
        wait_up(f"http://127.0.0.1:{base_port}/status")
        wait_up(f"{emulator_url}/_emulator/stats")
        auth = {"Authorization": f"Bearer {KEY}"}
        results = {}
        bare = parallel_downloads(f"http://127.0.0.1:{base_port}/video", {}, baseline.pid)
        for name, (url, process) in gateways.items():
            wait_up(f"{url}/healthz")
            task_id, _ = create_task(
                url, {"model": FAST, "prompt": "bench", "metadata": {"durationSeconds": 4}}
            )
            wait_done(url, task_id)
            # Serve a 200 MB object as this task's video (the emulator renders a few MB).
            key = f"{PREFIX}-{name}/videos/{task_id}/video.mp4"
            client.upload_file(str(video), BUCKET, key)
            content = f"{url}/v1/videos/{task_id}/content"
            results[name] = parallel_downloads(content, auth, process.pid)
        upload = asyncio.run(_upload(size))
        lines += [
            "Object storage (moto's S3 server on loopback, one process; the gateway's storage "
            f"at s3://{BUCKET}/...):",
            "",
            f"| {size >> 20} MiB to 20 clients | bare FileResponse | gateway, streamed from S3 | "
            "gateway, redirect to S3 |",
            "|---|---|---|---|",
            f"| gateway RSS growth (MiB) | {bare['rss_growth_mib']:.1f} | "
            f"{results['streamed']['rss_growth_mib']:.1f} | "
            f"{results['redirect']['rss_growth_mib']:.1f} |",
            f"| slowest first byte (ms) | {bare['ttfb_ms']:.1f} | "
            f"{results['streamed']['ttfb_ms']:.1f} | {results['redirect']['ttfb_ms']:.1f} |",
            f"| throughput (MiB/s) | {bare['mib_per_s']:,.0f} | "
            f"{results['streamed']['mib_per_s']:,.0f} | {results['redirect']['mib_per_s']:,.0f} |",
            f"| throughput, ratio of bare | 1 | "
            f"{results['streamed']['mib_per_s'] / bare['mib_per_s']:.2f} | "
            f"{results['redirect']['mib_per_s'] / bare['mib_per_s']:.2f} |",
            "",
            f"- {size >> 20} MiB streamed into the store (multipart upload, as the worker stores a "
            f"finished video): {upload:.1f} s.",
        ]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    return lines


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=VIDEO_BYTES >> 20, help="video size (MiB)")
    print("\n".join(run(parser.parse_args().mib << 20)))
