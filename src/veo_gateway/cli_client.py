"""The client side of the `veo-gateway` command: `generate`, `videos list/show/download/delete`.

These talk to a running gateway over HTTP with `veo_gateway.client`; they never open its database.
Progress goes to stderr, results (the file written, listings) to stdout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from veo_gateway.cli_output import iso_utc, print_json, print_rows
from veo_gateway.client import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    Client,
    ClientError,
    Video,
)

INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT

videos_app = typer.Typer(
    help="Tasks on a running gateway: list, show, download, delete.", no_args_is_help=True
)
NO_KEY = (
    f"no API key: pass --api-key KEY or set {API_KEY_ENV} "
    "(make one with `veo-gateway keys create --name NAME`)"
)

BaseUrl = Annotated[
    str, typer.Option("--base-url", envvar=BASE_URL_ENV, help="URL of the gateway.")
]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar=API_KEY_ENV, help="Client key (sent as a Bearer token)."),
]
PollInterval = Annotated[
    float, typer.Option(min=0.05, help="Seconds between status polls while waiting.")
]

_STATUS_LABELS = {
    "": "queued",
    "in_progress": "generating",
    "completed": "completed",
    "failure": "failed",
}


def _console() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(console: Console, message: str, code: int = 1) -> NoReturn:
    # soft_wrap keeps the server's message on one line, whatever the terminal width.
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _message(exc: ClientError) -> str:
    """The error's message; a refused key also says where the key came from."""
    if exc.status_code == 401:
        return f"{exc.message} (the key comes from --api-key or {API_KEY_ENV})"
    return exc.message


@contextmanager
def _session(base_url: str, api_key: str | None) -> Iterator[tuple[Client, Console]]:
    """A client of the gateway; with no key, or on any ClientError, exit saying why."""
    console = _console()
    if not api_key:
        _fail(console, NO_KEY)
    try:
        with Client(base_url, api_key) as client:
            yield client, console
    except ClientError as exc:
        _fail(console, _message(exc))


def _eta(video: Video) -> str:
    if video.eta_seconds is None:
        return ""
    seconds = max(0, round(video.eta_seconds))
    return f"about {seconds // 60}:{seconds % 60:02d} left"


def _wait(client: Client, video: Video, console: Console, poll_interval: float) -> Video:
    """Poll with a live bar showing the status, the progress and the time left."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[eta]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(_STATUS_LABELS.get(video.status, video.status), total=100, eta="")

        def show(current: Video) -> None:
            progress.update(
                bar,
                description=_STATUS_LABELS.get(current.status, current.status),
                completed=current.progress,
                eta=_eta(current),
            )

        return client.wait(video.id, on_progress=show, poll_interval=poll_interval)


def _download(client: Client, video_id: str, path: Path, console: Console, index: int = 0) -> Path:
    """Stream the MP4 (sample `index`) to `path` with a download bar."""
    columns = (
        TextColumn("downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("download", total=None)
        return client.download(
            video_id,
            path,
            on_bytes=lambda done, total: progress.update(bar, completed=done, total=total),
            index=index,
        )


@contextmanager
def _fetch_later_on_interrupt(console: Console, video_id: str, output: Path) -> Iterator[None]:
    """On Ctrl-C, leave the task running on the gateway and say how to get it later."""
    try:
        yield
    except KeyboardInterrupt:
        console.print(
            f"\nstopped waiting; {video_id} keeps running on the gateway. Fetch it later with:\n"
            f"  veo-gateway videos download {video_id} -o {escape(str(output))}",
            soft_wrap=True,
        )
        raise typer.Exit(INTERRUPTED) from None


def _finish(
    client: Client,
    video: Video,
    output: Path | None,
    console: Console,
    poll_interval: float,
    *,
    wait: bool = True,
    created: bool = False,
    index: int = 0,
    every_sample: bool = False,
) -> None:
    """Wait for the video if need be, then download it, or each of its samples (or fail with
    the task's reason)."""
    path = _sample_path(output, video.id, index)
    with _fetch_later_on_interrupt(console, video.id, path):
        if created:
            console.print(f"created {video.id} ({escape(video.model)})")
        # Without waiting, an unfinished task's download is refused by the gateway, saying why.
        if wait and not video.done:
            video = _wait(client, video, console, poll_interval)
        if video.failed:
            _fail(console, f"video {video.id} failed: {video.fail_reason or 'no reason given'}")
        indexes = range(video.sample_count) if every_sample else (index,)
        written = [
            _download(client, video.id, _sample_path(output, video.id, i), console, i)
            for i in indexes
        ]
    for saved in written:
        console.print(f"saved {escape(str(saved))}")
        typer.echo(str(saved))


def _sample_path(output: Path | None, video_id: str, index: int) -> Path:
    """Where sample `index` goes: ID.mp4, ID.1.mp4, ... or, with -o out.mp4, out.mp4,
    out.1.mp4, ..."""
    if output is None:
        return Path(f"{video_id}.mp4" if index == 0 else f"{video_id}.{index}.mp4")
    return output if index == 0 else output.with_name(f"{output.stem}.{index}{output.suffix}")


def generate(
    prompt: Annotated[str, typer.Argument(help="What to film.")],
    model: Annotated[str, typer.Option(help="Model to use.")] = DEFAULT_MODEL,
    image: Annotated[
        str | None, typer.Option(help="First frame: a local file or an http(s) URL.")
    ] = None,
    last_frame: Annotated[
        str | None, typer.Option(help="Last frame (needs --image): a file or a URL.")
    ] = None,
    reference: Annotated[
        list[str] | None,
        typer.Option(help="A reference image (file or URL); repeat for up to 3."),
    ] = None,
    aspect_ratio: Annotated[str | None, typer.Option(help="16:9 or 9:16.")] = None,
    duration: Annotated[int | None, typer.Option(help="Seconds: 4, 6 or 8.")] = None,
    resolution: Annotated[str | None, typer.Option(help="720p, 1080p or 4k.")] = None,
    negative_prompt: Annotated[str | None, typer.Option(help="What not to film.")] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            min=1, max=4, help="Videos to make (metadata.sampleCount), where the route allows."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (Vertex routes).")] = None,
    audio: Annotated[
        bool | None,
        typer.Option("--audio/--no-audio", help="Sound on or off (Vertex routes)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to save. Default: ID.mp4 (then ID.1.mp4, ...)."),
    ] = None,
    poll_interval: PollInterval = 2.0,
    base_url: BaseUrl = DEFAULT_BASE_URL,
    api_key: ApiKey = None,
) -> None:
    """Generate a video on a running gateway, show its progress, and download it."""
    with _session(base_url, api_key) as (client, console):
        video = client.create(
            prompt,
            model=model,
            image=image,
            last_frame=last_frame,
            references=reference or (),
            aspect_ratio=aspect_ratio,
            duration=duration,
            resolution=resolution,
            negative_prompt=negative_prompt,
            metadata=_options(samples, seed, audio),
        )
        _finish(client, video, output, console, poll_interval, created=True, every_sample=True)


def _options(samples: int | None, seed: int | None, audio: bool | None) -> dict[str, Any]:
    """The `metadata` options given on the command line; the rest are left to Google."""
    given = {"sampleCount": samples, "seed": seed, "generateAudio": audio}
    return {key: value for key, value in given.items() if value is not None}


AsJson = Annotated[bool, typer.Option("--json", help="Print the gateway's JSON.")]


@videos_app.command("list")
def videos_list(
    base_url: BaseUrl = DEFAULT_BASE_URL,
    api_key: ApiKey = None,
    limit: Annotated[
        int, typer.Option(min=0, help="Show the newest N tasks; 0 shows them all.")
    ] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the gateway's video objects as a JSON array.")
    ] = False,
) -> None:
    """List this key's tasks, newest first (times in UTC, ISO 8601)."""
    with _session(base_url, api_key) as (client, _):
        videos = client.list(limit or None)
    if as_json:
        print_json([dict(video.raw) for video in videos])
        return
    print_rows(
        ("id", "model", "status", "progress", "created", "completed"),
        [
            (
                video.id,
                video.model,
                _STATUS_LABELS.get(video.status, video.status),
                f"{video.progress}%",
                iso_utc(video.created_at),
                iso_utc(video.completed_at),
            )
            for video in videos
        ],
    )


@videos_app.command("show")
def videos_show(
    video_id: Annotated[str, typer.Argument(help="The video's id (video_...).")],
    as_json: AsJson = False,
    base_url: BaseUrl = DEFAULT_BASE_URL,
    api_key: ApiKey = None,
) -> None:
    """Show one task's status (times in UTC, ISO 8601)."""
    with _session(base_url, api_key) as (client, _):
        video = client.get(video_id)
    if as_json:
        print_json(dict(video.raw))
        return
    for key, value in video.raw.items():
        shown = iso_utc(value) if key.endswith("_at") and isinstance(value, int) else value
        typer.echo(f"{key}: {shown}")


@videos_app.command("download")
def videos_download(
    video_id: Annotated[str, typer.Argument(help="The video's id (video_...).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to save. Default: ID.mp4.")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for an unfinished task (else fail at once).")
    ] = True,
    index: Annotated[
        int,
        typer.Option(min=0, help="Which sample (0-based) of a task that made several."),
    ] = 0,
    poll_interval: PollInterval = 2.0,
    base_url: BaseUrl = DEFAULT_BASE_URL,
    api_key: ApiKey = None,
) -> None:
    """Download a task's MP4, waiting for it to finish first."""
    with _session(base_url, api_key) as (client, console):
        video = client.get(video_id)
        _finish(client, video, output, console, poll_interval, wait=wait, index=index)


@videos_app.command("delete")
def videos_delete(
    video_id: Annotated[str, typer.Argument(help="The video's id (video_...).")],
    base_url: BaseUrl = DEFAULT_BASE_URL,
    api_key: ApiKey = None,
) -> None:
    """Delete a task and its files on the gateway; a task still running is cancelled."""
    with _session(base_url, api_key) as (client, _):
        client.delete(video_id)
    typer.echo(f"deleted {video_id}")
