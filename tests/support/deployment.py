"""The deployment's files read as Docker and compose read them, for tests/test_deploy.py: the
Dockerfile's final stage, compose.yaml's services and the environment each container gets, env
files and compose's interpolation, and `veo-gateway ARGS` parsed by the real command's parser
without running it."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
import yaml

from veo_gateway import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
ENV_EXAMPLE = (DEPLOY / ".env.example").read_text(encoding="utf-8")
CADDYFILE = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")

# What an empty secret of .env.example is filled with to resolve the settings.
FILLED_SECRET = "operator-filled-secret-0123456789"


# Typer carries its own copy of Click (typer._click); its usage errors (no such command or
# option, a bad value) all derive from the class BadParameter derives from.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]
assert UsageError.__name__ == "UsageError"


def parse_command(args: Sequence[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """`veo-gateway ARGS` parsed by the real command's parser, running nothing: the
    subcommand's path (`("keys", "create")`) and its parameters. Raises UsageError for an
    unknown command or option, or a bad value."""
    command: Any = typer.main.get_command(cli.app)
    ctx = command.context_class(command, info_name="veo-gateway")
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "resolve_command"):  # a group: the next word names a command
        if not rest:
            ctx.fail("a subcommand is missing")
        name, command, rest = command.resolve_command(ctx, rest)
        path.append(name)
        if hasattr(command, "resolve_command"):
            ctx = command.context_class(command, info_name=name, parent=ctx)
    params: dict[str, Any] = command.make_context(path[-1], rest, parent=ctx).params
    return tuple(path), params


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's final stage, continuation lines joined."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = [
        (word.upper(), rest.strip())
        for word, _, rest in (line.strip().partition(" ") for line in joined.splitlines())
        if word
    ]
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def dockerfile(instruction: str) -> list[str]:
    """The arguments of each `instruction` of the final stage."""
    return [rest for word, rest in dockerfile_instructions(DOCKERFILE) if word == instruction]


def dockerfile_env() -> dict[str, str]:
    """The variables the final stage's ENV instructions set."""
    pairs = (item.partition("=") for rest in dockerfile("ENV") for item in shlex.split(rest))
    return {name: value for name, _, value in pairs}


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) instruction's argv."""
    argv = json.loads(arguments)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), arguments
    return argv


def healthcheck_argv() -> list[str]:
    (healthcheck,) = dockerfile("HEALTHCHECK")
    _, found, command = healthcheck.partition(" CMD ")
    assert found, f"HEALTHCHECK without CMD: {healthcheck}"
    return exec_form(command)


ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_file(text: str, *, commented: bool = False) -> dict[str, str]:
    """NAME=value lines of an env file; with `commented`, also the `# NAME=value` lines an
    operator is told to uncomment."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match and (commented or not match.group(1)):
            values[match.group(2)] = match.group(3).strip()
    return values


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


def interpolated(text: str) -> set[str]:
    """The variables `${NAME...}` a compose file takes from .env."""
    return set(INTERPOLATION.findall(text.replace("$$", "")))


def required(text: str) -> set[str]:
    """The variables compose refuses to start without (`${NAME:?message}`)."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text))


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """`value` with compose's `${NAME}`, `${NAME:?message}` and `${NAME:-default}` resolved."""

    def one(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(0)[len(match.group(1)) + 2 : -1]
        if env.get(name):
            return env[name]
        assert not rest.startswith((":?", "?")), f"compose would refuse: {name} is empty"
        return rest[2:] if rest.startswith(":-") else rest[1:] if rest.startswith("-") else ""

    return INTERPOLATION.sub(one, value).replace("$$", "$")


def services() -> dict[str, dict[str, Any]]:
    """compose.yaml's services, YAML merge keys (`<<: *gateway`) applied."""
    found: dict[str, dict[str, Any]] = COMPOSE["services"]
    return found


def gateway_services() -> dict[str, dict[str, Any]]:
    """The services that run the image this repository's Dockerfile builds."""
    image = next(s["image"] for s in services().values() if "build" in s)
    return {name: s for name, s in services().items() if s.get("image") == image}


def gateway_processes() -> dict[str, dict[str, Any]]:
    """The gateway services that serve the API or do the background work (not the emulator)."""
    return {
        name: s
        for name, s in gateway_services().items()
        if parse_command(command_of(s))[0] in (("serve",), ("worker",))
    }


def command_of(service: Mapping[str, Any]) -> list[str]:
    """A gateway service's arguments to the entry point: its command, else the image's CMD."""
    command = service.get("command")
    if command is None:
        (default,) = dockerfile("CMD")
        return exec_form(default)
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def operator_env() -> dict[str, str]:
    """deploy/.env as an operator makes it: .env.example with every empty secret filled in."""
    return {name: value or FILLED_SECRET for name, value in env_file(ENV_EXAMPLE).items()}


def container_env(service: Mapping[str, Any]) -> dict[str, str]:
    """The environment a gateway container gets: the image's ENV, then its env_file (.env),
    then its `environment`, interpolated from .env as compose does."""
    env = dockerfile_env()
    operator = operator_env()
    assert service.get("env_file") == ".env", "gateway services read their settings from .env"
    env.update(operator)
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    env.update({k: interpolate(str(v), operator) for k, v in environment.items()})
    return env


def role_of(service: Mapping[str, Any]) -> str:
    """What a gateway service runs: "api", "api and worker", "worker", "emulator", ..."""
    path, params = parse_command(command_of(service))
    if path == ("serve",):
        return "api" if params["worker"] is False else "api and worker"
    return path[0]


def replicas(service: Mapping[str, Any]) -> int:
    """The containers compose starts for a service."""
    count: int = (service.get("deploy") or {}).get("replicas", 1)
    return count


def host_service(url: str) -> dict[str, Any]:
    """The compose service a URL's host names."""
    host = urlsplit(url).hostname
    assert host in services(), f"{url} names no service of compose.yaml"
    return services()[host]
