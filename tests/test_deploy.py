"""The deployment (Dockerfile, deploy/compose.yaml, deploy/.env.example, deploy/Caddyfile) kept
honest without Docker: every command parses with the real command's parser, every variable is
a declared setting listed in the README, the settings it resolves to validate, the image's
health check answers on the real app of either role, and the shape it deploys is the one the
chaos test runs (tests/support/topology.py)."""

from __future__ import annotations

import importlib.metadata
import inspect
import itertools
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.chaos import test_chaos as chaos
from tests.conftest import Gateway, gateway_settings
from tests.support import topology
from tests.support.deployment import (
    CADDYFILE,
    COMPOSE_TEXT,
    ENV_EXAMPLE,
    FILLED_SECRET,
    ROOT,
    UsageError,
    command_of,
    container_env,
    dockerfile,
    dockerfile_env,
    env_file,
    exec_form,
    gateway_processes,
    gateway_services,
    healthcheck_argv,
    host_service,
    interpolated,
    parse_command,
    replicas,
    required,
    role_of,
    services,
)
from tests.support.servers import free_port, serve_app, serve_files
from tests.test_docs import README
from veo_gateway import cli
from veo_gateway.app import create_app
from veo_gateway.roles import Role
from veo_gateway.settings import Settings
from veo_gateway.upstreams import plan_upstreams

# --- Settings and the README ----------------------------------------------------------


def declared_settings() -> set[str]:
    """Every environment variable settings.py reads (each field's name and its aliases)."""
    names = {f"VEO_GATEWAY_{name.upper()}" for name in Settings.model_fields}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names |= {c for c in getattr(alias, "choices", []) if isinstance(c, str)}
    return names


def readme_settings_table() -> set[str]:
    """The variables named in the first column of the README's Settings table."""
    section = README.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = (line.split("|")[1] for line in section.splitlines() if line.startswith("| `"))
    return {name for cell in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


def undeclared(names: set[str]) -> set[str]:
    """The settings among `names` that settings.py does not declare (typos, removed ones)."""
    settings = {n for n in names if n.startswith("VEO_GATEWAY_") or n == "GEMINI_API_KEY"}
    return settings - declared_settings()


def undocumented(names: set[str]) -> set[str]:
    """The settings among `names` missing from the README's Settings table."""
    settings = {n for n in names if n.startswith("VEO_GATEWAY_") or n == "GEMINI_API_KEY"}
    return settings - readme_settings_table()


# --- Commands ----------------------------------------------------------------------------


def test_the_command_check_can_fail() -> None:
    assert parse_command(["serve", "--no-worker"])[0] == ("serve",)
    assert parse_command(["keys", "create", "--name", "me"])[0] == ("keys", "create")
    for bogus in (["serve", "--no-such-option"], ["srve"], ["worker", "--port", "eighty"], []):
        with pytest.raises(UsageError):
            parse_command(bogus)


def test_every_compose_command_is_a_real_subcommand_with_real_options() -> None:
    found = gateway_services()
    assert {"api", "worker"} <= set(found)
    for name, service in found.items():
        try:
            parse_command(command_of(service))
        except UsageError as exc:
            pytest.fail(f"compose service {name}: `veo-gateway {command_of(service)}`: {exc}")


def test_the_image_runs_the_veo_gateway_command_serve_by_default() -> None:
    (entrypoint,) = dockerfile("ENTRYPOINT")
    assert exec_form(entrypoint) == ["veo-gateway"]
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="veo-gateway")
    assert script.value == "veo_gateway.cli:main" and script.load().__module__ == cli.__name__
    (cmd,) = dockerfile("CMD")
    path, params = parse_command(exec_form(cmd))
    assert path == ("serve",) and params["worker"] is None  # the worker as the settings say


def test_the_image_runs_as_an_unprivileged_user_on_a_data_volume() -> None:
    (user,) = dockerfile("USER")
    assert user.split(":")[0] not in ("root", "0")
    env = dockerfile_env()
    assert env["VEO_GATEWAY_HOST"] == "0.0.0.0"
    # Either role listens on the port the health check and the load balancer use.
    assert env["VEO_GATEWAY_PORT"] == env["VEO_GATEWAY_WORKER_PORT"]
    (volume,) = dockerfile("VOLUME")
    assert env["VEO_GATEWAY_DATA_DIR"] in exec_form(volume)
    # The final stage installs the wheels the build stage made, and nothing from elsewhere.
    (install,) = (r for r in dockerfile("RUN") if "pip install" in r)
    assert "--no-index" in install and "from=build" in install


# --- Variables ---------------------------------------------------------------------------


def test_the_variable_checks_can_fail() -> None:
    assert undeclared({"VEO_GATEWAY_DATABSE_URL", "VEO_GATEWAY_PORT"}) == {
        "VEO_GATEWAY_DATABSE_URL"
    }
    assert undocumented({"VEO_GATEWAY_NOT_IN_THE_README", "GEMINI_API_KEY"}) == {
        "VEO_GATEWAY_NOT_IN_THE_README"
    }


def deployment_variables() -> set[str]:
    """Every variable the deployment sets: the image's ENV, .env.example (the commented
    alternatives too) and each service's `environment`."""
    names = set(dockerfile_env()) | set(env_file(ENV_EXAMPLE, commented=True))
    for service in services().values():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        names |= set(environment)
    return names


def test_every_variable_is_a_declared_setting_listed_in_the_readme() -> None:
    names = deployment_variables()
    assert "VEO_GATEWAY_DATABASE_URL" in names  # the check has settings to look at
    assert not undeclared(names), f"not declared in settings.py: {sorted(undeclared(names))}"
    assert not undocumented(names), (
        f"missing from the README's Settings table: {sorted(undocumented(names))}"
    )


def test_every_other_variable_of_the_env_example_is_read_by_something() -> None:
    # Not a setting: compose.yaml reads it (a password it passes on), or a library does (the
    # README then names it).
    others = {
        name
        for name in env_file(ENV_EXAMPLE, commented=True)
        if not (name.startswith("VEO_GATEWAY_") or name in declared_settings())
    }
    unread = others - interpolated(COMPOSE_TEXT)
    unread = {name for name in unread if f"`{name}`" not in README}
    assert not unread, f"deploy/.env.example sets variables nothing reads: {sorted(unread)}"


def test_every_secret_is_left_for_the_operator_to_fill() -> None:
    example = env_file(ENV_EXAMPLE)
    assert set(interpolated(COMPOSE_TEXT)) <= set(example), "compose reads a variable .env lacks"
    secrets = {n for n in example if re.search(r"PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY", n)}
    assert {"POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY", "GEMINI_API_KEY"} <= secrets
    filled = {n: example[n] for n in secrets if example[n] not in ("", "change-me")}
    assert not filled, f"deploy/.env.example gives secrets a value: {filled}"
    # And compose stops, naming it, while one is left empty.
    assert secrets <= required(COMPOSE_TEXT), sorted(secrets - required(COMPOSE_TEXT))


def test_the_settings_each_gateway_service_resolves_to_are_valid_and_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolved = {name: container_env(s) for name, s in gateway_processes().items()}
    # Every process must share the settings (README, "Running several replicas").
    assert resolved["api"] == resolved["worker"]
    for name, value in resolved["api"].items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # raises on a value the gateway would refuse at start-up
    assert settings.host == "0.0.0.0"
    assert settings.admin_token == FILLED_SECRET
    assert not plan_upstreams(settings).embedded  # Google (the filled key), not the emulator


# --- The health check --------------------------------------------------------------------


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, as the container runs it (its `python` is this one)."""
    argv = healthcheck_argv()
    assert argv[0] == "python", argv  # the base image's interpreter; the image has no curl
    # Liveness, not readiness: a cooling credential or a full disk must not mark it unhealthy.
    assert re.findall(r"/[a-z]+z\b", " ".join(argv)) == ["/healthz"], argv
    # Behind a proxy the operator set for the upstream (one that answers nothing): the check
    # must still reach the process itself.
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "VEO_GATEWAY_PORT": str(port)}
    env.update(HTTP_PROXY=dead_proxy, http_proxy=dead_proxy, NO_PROXY="", no_proxy="")
    return subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, text=True, timeout=60
    )


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def test_the_health_check_passes_on_serve(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway()
    result = run_healthcheck(port_of(gateway.url))
    assert result.returncode == 0, result.stderr


def test_the_health_check_passes_on_the_worker(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path / "worker-data")
    with serve_app(create_app(settings, role=Role.WORKER)) as url:
        result = run_healthcheck(port_of(url))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def not_the_gateway() -> Iterator[str]:
    """A server that answers every path with 404."""
    with serve_files({}) as url:
        yield url


def test_the_health_check_fails_without_the_health_route(not_the_gateway: str) -> None:
    assert run_healthcheck(port_of(not_the_gateway)).returncode != 0
    assert run_healthcheck(free_port()).returncode != 0  # nothing listening


# --- The topology ------------------------------------------------------------------------


def test_the_topology_is_the_one_the_chaos_test_runs() -> None:
    found = gateway_services()
    roles = {name: role_of(service) for name, service in found.items()}
    # The emulator is for a try without a Google key: started only with its profile.
    assert all("profiles" in found[name] for name, role in roles.items() if role == "emulator")
    assert sorted(r for r in roles.values() if r != "emulator") == ["api", "worker"], roles
    (api,) = (found[name] for name, role in roles.items() if role == "api")
    (worker,) = (found[name] for name, role in roles.items() if role == "worker")
    assert tuple(command_of(api)) == topology.API_ARGS
    assert tuple(command_of(worker)) == topology.WORKER_ARGS
    assert replicas(api) == topology.API_REPLICAS
    assert 1 <= replicas(worker) <= topology.WORKERS


def test_the_tasks_are_in_postgresql_as_in_the_chaos_test() -> None:
    marks = chaos.pytestmark if isinstance(chaos.pytestmark, list) else [chaos.pytestmark]
    assert "postgresql" in [mark.name for mark in marks]
    url = container_env(gateway_processes()["api"])["VEO_GATEWAY_DATABASE_URL"]
    assert urlsplit(url).scheme == "postgresql"
    assert host_service(url)["image"].startswith("postgres:")
    for service in gateway_processes().values():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_videos_are_in_the_bucket_the_deployment_makes() -> None:
    env = container_env(gateway_processes()["api"])
    storage = urlsplit(env["VEO_GATEWAY_STORAGE_URL"])
    assert storage.scheme == "s3"
    assert "s3_bucket" in inspect.signature(chaos.test_chaos).parameters  # its storage too
    assert host_service(env["AWS_ENDPOINT_URL"])["image"].startswith("minio/minio")
    bucket = services()["bucket"]
    assert bucket["command"][:2] == ["mb", "--ignore-existing"]
    alias, _, made = bucket["command"][-1].partition("/")
    assert made == storage.netloc, f"the bucket service makes {made}, not {storage.netloc}"
    assert urlsplit(bucket["environment"][f"MC_HOST_{alias}"]).hostname == "minio"
    for service in gateway_processes().values():
        condition = service["depends_on"]["bucket"]["condition"]
        assert condition == "service_completed_successfully"


def test_the_load_balancer_sends_requests_to_the_api_replicas() -> None:
    lb = services()["lb"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in lb["volumes"]
    upstreams = re.findall(r"^\s*dynamic a (\S+) (\d+)", CADDYFILE, re.M)
    assert upstreams, "the Caddyfile names no upstream"
    for name, port in upstreams:
        assert role_of(services()[name]) == "api", f"the load balancer sends to {name}"
        assert port == dockerfile_env()["VEO_GATEWAY_PORT"]


# --- The README ----------------------------------------------------------------------------


def compose_part() -> str:
    section = README.split("\n## Running several replicas\n", 1)[1].split("\n## ", 1)[0]
    return section.split("\n### With Docker Compose\n", 1)[1].split("\n### ", 1)[0]


def test_the_readme_compose_commands_name_real_files_services_and_commands() -> None:
    text = compose_part()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [line.split(" #")[0].strip() for block in blocks for line in block.splitlines()]
    # Inline ones too, wrapped over lines or not.
    lines += [" ".join(span.split()) for span in re.findall(r"`(docker [^`]+)`", text)]
    dockers = [shlex.split(line) for line in lines if line.startswith("docker compose")]
    assert dockers, "the README shows no docker compose command"
    for words in dockers:
        assert words[2:4] == ["-f", "deploy/compose.yaml"], words
        for flag, value in itertools.pairwise(words):
            if flag == "--profile":
                assert any(value in s.get("profiles", []) for s in services().values()), words
            if flag == "--scale":
                assert value.partition("=")[0] in services(), words
        if "exec" in words:
            service, *args = words[words.index("exec") + 1 :]
            assert service in gateway_services() and args[0] == "veo-gateway", words
            parse_command(args[1:])
    for line in lines:
        if line.startswith("cp "):
            assert (ROOT / shlex.split(line)[1]).is_file(), line
