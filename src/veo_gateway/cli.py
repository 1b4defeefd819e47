"""The `veo-gateway` command: serve, worker, doctor and emulator; keys (cli_keys.py); generate
and videos (cli_client.py)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn
from pydantic import ValidationError

from veo_gateway.cli_client import generate, videos_app
from veo_gateway.cli_keys import keys_app
from veo_gateway.domain.catalog import DEFAULT_MODEL
from veo_gateway.observability.logs import configure_logging
from veo_gateway.routes import route_table
from veo_gateway.runtime import settle_interpreter
from veo_gateway.settings import Settings, env_name

if TYPE_CHECKING:
    from veo_gateway.doctor import Finding
    from veo_gateway.upstreams import Plan

app = typer.Typer(
    help="veo-gateway: Google's Veo video models behind one asynchronous HTTP API.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(keys_app, name="keys", no_args_is_help=True)
# The client commands talk to a running gateway over HTTP (veo_gateway.client).
app.command()(generate)
app.add_typer(videos_app, name="videos")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"veo-gateway {importlib.metadata.version('veo-gateway')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """veo-gateway: Google's Veo video models behind one asynchronous HTTP API."""


# Typer joins single lines of a help text; blank lines separate its paragraphs.
SERVE_EPILOG = "\n\n".join(
    [
        "Everything else is set in the environment: every setting is a variable, listed with "
        "its default and meaning in the README's Settings section. The main ones: "
        "VEO_GATEWAY_DATA_DIR (the database and videos; default ./data), GEMINI_API_KEY (unset: "
        "the built-in emulator), VEO_GATEWAY_API_KEYS, VEO_GATEWAY_LOG_LEVEL.",
        "Upstreams, routes and model overrides go in the operator config file (TOML), named by "
        "VEO_GATEWAY_CONFIG.",
        "All settings: " + ", ".join(env_name(name) for name in Settings.model_fields) + ".",
    ]
)


def _upstream(plan: Plan) -> list[str]:
    """The upstream and the route table a process serves."""
    if plan.embedded:
        head = (
            "upstream: the built-in Veo emulator (set GEMINI_API_KEY, or "
            "GOOGLE_GENAI_USE_VERTEXAI=true and GOOGLE_CLOUD_PROJECT, to use Google)"
        )
    else:
        head = f"upstream: {plan.description}"
    return [head, *route_table(plan.config, embedded=plan.embedded)]


def banner(settings: Settings, plan: Plan) -> list[str]:
    """What `serve` prints before it starts: where it listens, its upstreams and routes, and a
    first request."""
    url = f"http://{settings.host}:{settings.port}"
    body = f'{{"model":"{DEFAULT_MODEL}","prompt":"a cat"}}'
    role = (
        []
        if settings.worker_enabled
        else [
            "API only: no worker in this process (--no-worker or VEO_GATEWAY_WORKER_ENABLED="
            "false); tasks wait for `veo-gateway worker` on the same database"
        ]
    )
    return [
        f"veo-gateway listening on {url}  (data in {settings.data_dir.resolve()})",
        *role,
        *_upstream(plan),
        "API keys: `veo-gateway keys create --name NAME`, or VEO_GATEWAY_API_KEYS=k1,k2",
        # Without a content type curl sends -d as a form, which is not what the API reads.
        f"try: curl -H 'Authorization: Bearer KEY' -H 'Content-Type: application/json' "
        f"{url}/v1/videos -d '{body}'",
    ]


@app.command(epilog=SERVE_EPILOG)
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Run the background work in this process too (default: "
            "VEO_GATEWAY_WORKER_ENABLED, true). --no-worker: the API only, beside "
            "`veo-gateway worker`.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the gateway (and, with no GEMINI_API_KEY, the built-in emulator in-process)."""
    import asyncio

    from veo_gateway.app import StartupError, create_app, preflight
    from veo_gateway.http_server import uvicorn_options

    settings = Settings()
    given = {"host": host, "port": port, "worker_enabled": worker}
    overrides = {k: v for k, v in given.items() if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level, settings.log_format)
    from veo_gateway.upstreams import plan_upstreams

    plan = plan_upstreams(settings)  # a ConfigError is said by main(), before anything starts
    try:
        asyncio.run(preflight(settings))
    except StartupError as exc:
        typer.echo(f"veo-gateway: cannot start: {exc}", err=True)
        raise SystemExit(1) from None
    for line in banner(settings, plan):
        typer.echo(line)
    settle_interpreter()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
        **uvicorn_options(settings),
    )


def worker_banner(settings: Settings, plan: Plan, host: str, port: int) -> list[str]:
    """What `worker` prints before it starts."""
    url = f"http://{host}:{port}"
    return [
        f"veo-gateway worker: the background work only, no public API  (data in "
        f"{settings.data_dir.resolve()})",
        f"health, readiness and metrics on {url}/healthz, {url}/readyz, {url}/metrics",
        *_upstream(plan),
    ]


@app.command(epilog=SERVE_EPILOG)
def worker(
    host: Annotated[
        str | None, typer.Option(help="Address of the listener (default VEO_GATEWAY_HOST).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port of the listener (default VEO_GATEWAY_WORKER_PORT, 8002)."),
    ] = None,
) -> None:
    """Run the background work only: submit, poll, store videos, send webhooks, sweep."""
    import asyncio

    from veo_gateway.app import StartupError, create_app, preflight
    from veo_gateway.roles import Role, WorkerLockHeld, claim

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    bind_host, bind_port = host or settings.host, port or settings.worker_port
    from veo_gateway.upstreams import plan_upstreams

    plan = plan_upstreams(settings)
    try:
        asyncio.run(preflight(settings))
        # Taken before the listener starts, so a refusal is this one line.
        role, lock = claim(Role.WORKER, settings)
    except (StartupError, WorkerLockHeld) as exc:
        typer.echo(f"veo-gateway: cannot start: {exc}", err=True)
        raise SystemExit(1) from None
    for line in worker_banner(settings, plan, bind_host, bind_port):
        typer.echo(line)
    settle_interpreter()
    uvicorn.run(
        create_app(settings, role=role, worker_lock=lock),
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
    )


@app.command()
def doctor() -> None:
    """Check every upstream credential and route with calls that start no paid job (is the
    key or token accepted, does Google still serve each model id), print what works and what
    does not with the fix; exit 1 when something is broken."""
    import asyncio

    from veo_gateway.doctor import diagnose
    from veo_gateway.providers.http import UpstreamHttp
    from veo_gateway.upstreams import plan_upstreams

    settings = Settings()
    configure_logging("warning", settings.log_format)
    plan = plan_upstreams(settings)
    typer.echo(f"upstream: {plan.description}")
    for note in plan.notes:
        typer.echo(f"note: {note}")
    for line in route_table(plan.config, embedded=plan.embedded):
        typer.echo(line)

    async def run() -> list[Finding]:
        async with UpstreamHttp(timeout=settings.upstream_timeout) as client:
            return await diagnose(plan.config, client, embedded=plan.embedded)

    findings = asyncio.run(run())
    typer.echo("")
    for finding in findings:
        for line in finding.lines():
            typer.echo(line)
    broken = sum(1 for f in findings if f.ok is False)
    if broken:
        typer.echo(f"\n{broken} problem(s) found.")
        raise SystemExit(1)
    typer.echo("\nevery upstream and route works.")


@app.command()
def emulator(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    storage_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where operations and rendered videos are kept (a restart carries on with "
            "them). Default: DATA_DIR/emulator."
        ),
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(help="Faults to inject, e.g. 'submit.429=0.1,*.500=0.05,seed=7'."),
    ] = None,
    render: Annotated[
        str | None,
        typer.Option(
            help="'each': a video per operation; 'once': one per output shape, served to every "
            "operation of that shape (benchmarks)."
        ),
    ] = None,
) -> None:
    """Run the Veo emulator alone (Google's Gemini API and Vertex AI protocols, real MP4s)."""
    from veo_gateway.emulator.app import create_emulator_app
    from veo_gateway.emulator.core import config_from_settings

    settings = Settings()
    overrides: dict[str, str] = {}
    for option, name, value in (
        ("--faults", "emulator_faults", faults),
        ("--render", "emulator_render", render),
    ):
        if value is None:
            continue
        overrides[name] = value
        try:  # validated like the environment's
            settings = Settings(**overrides)  # type: ignore[arg-type]  # checked by pydantic
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise typer.BadParameter(str(exc), param_hint=option) from None
    configure_logging(settings.log_level, settings.log_format)
    config = config_from_settings(
        settings, storage_dir=storage_dir or settings.data_dir / "emulator", persist=True
    )
    bind_host = host or settings.emulator_host
    bind_port = port or settings.emulator_port
    typer.echo(
        f"Veo emulator listening on http://{bind_host}:{bind_port} "
        f"(latency {settings.emulator_latency} s"
        + (f", faults {settings.emulator_faults}" if settings.emulator_faults else "")
        + (", one render per shape" if settings.emulator_render == "once" else "")
        + ")"
    )
    typer.echo(
        f"point the gateway at it: VEO_GATEWAY_GEMINI_BASE_URL=http://{bind_host}:"
        f"{bind_port} GEMINI_API_KEY=any-key veo-gateway serve"
    )
    typer.echo(
        f"or over Vertex AI's protocol: GOOGLE_GENAI_USE_VERTEXAI=true GOOGLE_CLOUD_PROJECT=demo "
        f"GOOGLE_VERTEX_BASE_URL=http://{bind_host}:{bind_port} "
        "VEO_GATEWAY_VERTEX_ACCESS_TOKEN=any-token veo-gateway serve"
    )
    settle_interpreter()
    uvicorn.run(
        create_emulator_app(config),
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
    )


def main() -> None:
    """Entry point of the `veo-gateway` command."""
    from veo_gateway.config import ConfigError

    try:
        app()
    except ValidationError as exc:
        # A wrong setting: say which and why, without a traceback or the value (it may be a
        # secret).
        lines = "\n".join(f"  {_setting_name(exc, e['loc'])}: {e['msg']}" for e in exc.errors())
        typer.echo(f"veo-gateway: invalid configuration:\n{lines}", err=True)
        raise SystemExit(2) from None
    except ConfigError as exc:
        typer.echo(f"veo-gateway: invalid configuration:\n{exc}", err=True)
        raise SystemExit(2) from None


def _setting_name(exc: ValidationError, loc: tuple[int | str, ...]) -> str:
    """The environment variable behind an error's location (for Settings), else the location."""
    if exc.title == "Settings" and loc and str(loc[0]) in Settings.model_fields:
        return env_name(str(loc[0]))
    return ".".join(str(part) for part in loc)
