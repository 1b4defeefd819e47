"""The operator's config file (TOML, path in `VEO_GATEWAY_CONFIG`): upstreams, routes, models.

```toml
[[upstreams]]
name = "gemini"                 # referred to by routes
kind = "gemini"                 # or "vertex"
api_keys = ["AIza...", "AIza..."]   # gemini: each key is one credential of the pool
rpm = 10                        # submissions per minute, per credential
max_in_flight = 10              # operations running at once, per credential
cool_down_seconds = 30          # rest after a 429

[[upstreams]]
name = "vertex"
kind = "vertex"
project = "my-project"
location = "us-central1"
service_account_file = "/etc/veo/sa.json"   # omitted: Application Default Credentials
storage_uri = "gs://my-bucket/veo/"         # optional: results written to GCS

[[upstreams]]
name = "rehearsal"
kind = "emulator"                           # the built-in emulator, started in-process
latency = "2-5"                             # optional; default VEO_GATEWAY_EMULATOR_LATENCY
faults = "*.429=0.05,operation.fail=0.02"   # optional; default VEO_GATEWAY_EMULATOR_FAULTS

[[routes]]
model = "veo-3.1-generate-preview"          # the public name clients send
targets = [
  { upstream = "vertex", model = "veo-3.1-generate-001" },   # tried first
  { upstream = "gemini" },                                  # same model id upstream
]

[models."veo-3.1-generate-preview"]         # capability overrides of the built-in row
typical_latency = 80

[prices."veo-3.1-generate-preview"]         # USD per output second, over the list prices
"720p" = 0.40
"4k" = 0.60

[prices_without_audio."veo-3.1-generate-001"]   # the same, for generateAudio = false
"720p" = 0.20
```

Without a file, the environment describes the simple case, with the google-genai SDK's variable
names: `GOOGLE_GENAI_USE_VERTEXAI=true` and `GOOGLE_CLOUD_PROJECT` serve the spec's models by
Vertex AI's GA ids (`vertex_config`); else `GOOGLE_API_KEY` or `GEMINI_API_KEY` (one key, or
several separated by commas) serves every built-in model the Gemini API knows; with neither, the
built-in emulator does.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veo_gateway.domain.catalog import BUILTIN_MODELS, ModelCapabilities

# Google's published defaults: Veo 3.1 GA on Vertex takes 50 requests a minute per project,
# preview models 10; Gemini API keys are held to about the same on paid tiers.
DEFAULT_RPM = 10
DEFAULT_MAX_IN_FLIGHT = 10
# How long a credential rests after Google answers 429 / RESOURCE_EXHAUSTED.
DEFAULT_COOL_DOWN = 30.0


class ConfigError(ValueError):
    """The config file is unreadable or says something impossible."""


@dataclass(frozen=True)
class UpstreamConfig:
    """One upstream account: a Gemini API key set, a Vertex AI project, or the emulator."""

    name: str
    kind: str  # "gemini" | "vertex" | "emulator"
    api_keys: tuple[str, ...] = ()
    base_url: str | None = None
    project: str | None = None
    location: str = "us-central1"
    service_account_file: Path | None = None
    access_token: str | None = None  # a token managed outside the gateway (or an emulator's)
    storage_uri: str | None = None
    rpm: int = DEFAULT_RPM
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    cool_down_seconds: float = DEFAULT_COOL_DOWN
    latency: str | None = None  # emulator: seconds an operation takes ("4-8")
    faults: str | None = None  # emulator: the fault spec (see emulator/faults.py)


@dataclass(frozen=True)
class Target:
    """Where a public model is served: an upstream, and the model id it knows it by."""

    upstream: str
    model: str


@dataclass(frozen=True)
class GatewayConfig:
    """Upstreams, routes (public model -> targets in order) and the capability rows."""

    upstreams: tuple[UpstreamConfig, ...]
    routes: dict[str, tuple[Target, ...]]
    models: tuple[ModelCapabilities, ...] = field(default=BUILTIN_MODELS)
    # USD per second by model and resolution, over the built-in list prices.
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    prices_without_audio: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def default_config(
    gemini_keys: list[str],
    *,
    base_url: str | None = None,
    name: str = "gemini",
    rpm: int = DEFAULT_RPM,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> GatewayConfig:
    """The environment-only config: one Gemini upstream serving every built-in model the
    Gemini API knows (Vertex's GA ids are left out: Google answers 404 for them there)."""
    upstream = UpstreamConfig(
        name=name,
        kind="gemini",
        api_keys=tuple(gemini_keys),
        base_url=base_url,
        rpm=rpm,
        max_in_flight=max_in_flight,
    )
    models = tuple(row for row in BUILTIN_MODELS if _serves(upstream, row))
    routes: dict[str, tuple[Target, ...]] = {row.name: (Target(name, row.name),) for row in models}
    return GatewayConfig(upstreams=(upstream,), routes=routes, models=models)


# Vertex AI serves the spec's two models by its GA ids (the Gemini API's `-preview` ids are not
# the durable ones there), and the GA ids under their own names.
VERTEX_ROUTES: Mapping[str, str] = {
    "veo-3.1-generate-preview": "veo-3.1-generate-001",
    "veo-3.1-fast-generate-preview": "veo-3.1-fast-generate-001",
    "veo-3.1-generate-001": "veo-3.1-generate-001",
    "veo-3.1-fast-generate-001": "veo-3.1-fast-generate-001",
    # Gemini Omni: the same ids on Vertex AI's Interactions API.
    "gemini-omni-1.1-flash": "gemini-omni-1.1-flash",
    "gemini-omni-1.2-flash": "gemini-omni-1.2-flash",
}


def vertex_config(
    *,
    project: str,
    location: str,
    base_url: str | None = None,
    access_token: str | None = None,
    name: str = "vertex",
    rpm: int = DEFAULT_RPM,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> GatewayConfig:
    """The environment-only Vertex AI config: one project serving `VERTEX_ROUTES`."""
    upstream = UpstreamConfig(
        name=name,
        kind="vertex",
        project=project,
        location=location,
        base_url=base_url,
        access_token=access_token,
        rpm=rpm,
        max_in_flight=max_in_flight,
    )
    models = tuple(row for row in BUILTIN_MODELS if row.name in VERTEX_ROUTES)
    routes: dict[str, tuple[Target, ...]] = {
        row.name: (Target(name, VERTEX_ROUTES[row.name]),) for row in models
    }
    return GatewayConfig(upstreams=(upstream,), routes=routes, models=models)


def route_kinds(config: GatewayConfig) -> dict[str, frozenset[str]]:
    """The upstream protocols ("gemini", "vertex") each public model's route may send it to;
    the emulator speaks the Gemini API's."""
    kind = {u.name: "vertex" if u.kind == "vertex" else "gemini" for u in config.upstreams}
    return {
        model: frozenset(kind[target.upstream] for target in targets if target.upstream in kind)
        for model, targets in config.routes.items()
    }


def _serves(upstream: UpstreamConfig, row: ModelCapabilities) -> bool:
    """Whether the upstream's protocol knows the row's model id (the emulator speaks Gemini's)."""
    return ("vertex" if upstream.kind == "vertex" else "gemini") in row.served_by


def _require(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: '{key}' is required")
    return table[key]


def _upstream(table: dict[str, Any], index: int) -> UpstreamConfig:
    where = f"upstreams[{index}]"
    kind = _require(table, "kind", where)
    if kind not in ("gemini", "vertex", "emulator"):
        raise ConfigError(f"{where}: kind must be 'gemini', 'vertex' or 'emulator', not {kind!r}")
    known = {f.name for f in dataclasses.fields(UpstreamConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    values = dict(table)
    values["api_keys"] = tuple(values.get("api_keys", ()))
    if "service_account_file" in values:
        values["service_account_file"] = Path(values["service_account_file"])
    upstream = UpstreamConfig(**values)
    if kind == "gemini" and not upstream.api_keys:
        raise ConfigError(f"{where}: a gemini upstream needs api_keys")
    if kind == "vertex" and not upstream.project:
        raise ConfigError(f"{where}: a vertex upstream needs project")
    if upstream.rpm < 1 or upstream.max_in_flight < 1:
        raise ConfigError(f"{where}: rpm and max_in_flight must be at least 1")
    if kind != "emulator" and (upstream.latency is not None or upstream.faults is not None):
        raise ConfigError(f"{where}: latency and faults are for kind = 'emulator' only")
    if kind == "emulator":
        _check_emulator(upstream, where)
    return upstream


def _check_emulator(upstream: UpstreamConfig, where: str) -> None:
    from veo_gateway.emulator.faults import Faults
    from veo_gateway.settings import parse_latency

    try:
        if upstream.latency is not None:
            parse_latency(upstream.latency)
        if upstream.faults is not None:
            Faults.parse(upstream.faults)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _models(overrides: dict[str, Any]) -> tuple[ModelCapabilities, ...]:
    rows = {row.name: row for row in BUILTIN_MODELS}
    fields = {f.name: f for f in dataclasses.fields(ModelCapabilities)}
    for name, table in overrides.items():
        base = rows.get(name, ModelCapabilities(name=name))
        changes: dict[str, Any] = {}
        for key, value in table.items():
            if key not in fields or key == "name":
                raise ConfigError(f"models.{name}: unknown capability {key!r}")
            current = getattr(base, key)
            if isinstance(current, tuple):
                value = tuple(value)
            elif isinstance(current, frozenset):
                value = frozenset(value)
            changes[key] = value
        rows[name] = dataclasses.replace(base, **changes)
    return tuple(rows.values())


def load_config(path: Path) -> GatewayConfig:
    """Read and check a config file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    upstreams = tuple(_upstream(t, i) for i, t in enumerate(data.get("upstreams", [])))
    if not upstreams:
        raise ConfigError("the config declares no [[upstreams]]")
    names = [u.name for u in upstreams]
    if len(set(names)) != len(names):
        raise ConfigError("upstream names must be unique")
    models = _models(data.get("models", {}))
    routes: dict[str, tuple[Target, ...]] = {}
    for index, table in enumerate(data.get("routes", [])):
        where = f"routes[{index}]"
        public = _require(table, "model", where)
        targets = []
        for target in _require(table, "targets", where):
            upstream = _require(target, "upstream", where)
            if upstream not in names:
                raise ConfigError(f"{where}: no upstream named {upstream!r}")
            targets.append(Target(upstream, target.get("model", public)))
        if not targets:
            raise ConfigError(f"{where}: targets must not be empty")
        routes[public] = tuple(targets)
    if not routes:
        # No routes: every model is served by every upstream that knows its id, in the order
        # declared.
        routes = {
            row.name: knowing
            for row in models
            if (knowing := tuple(Target(u.name, row.name) for u in upstreams if _serves(u, row)))
        }
    missing = sorted(set(routes) - {row.name for row in models})
    if missing:
        raise ConfigError(f"routes name models with no capability row: {', '.join(missing)}")
    served = tuple(row for row in models if row.name in routes)
    return GatewayConfig(
        upstreams=upstreams,
        routes=routes,
        models=served,
        prices=_prices(data.get("prices", {})),
        prices_without_audio=_prices(data.get("prices_without_audio", {}), "prices_without_audio"),
    )


def _prices(table: Any, name: str = "prices") -> dict[str, dict[str, float]]:
    """`[prices."model"]` tables: resolution = USD per second."""
    if not isinstance(table, dict):
        raise ConfigError(f"{name} must be a table of models")
    prices: dict[str, dict[str, float]] = {}
    for model, row in table.items():
        if not isinstance(row, dict) or not row:
            raise ConfigError(f'{name}."{model}" must map resolutions to USD per second')
        for resolution, price in row.items():
            if resolution not in ("360p", "720p", "1080p", "4k"):
                raise ConfigError(
                    f'{name}."{model}": unknown resolution {resolution!r} (360p, 720p, 1080p, 4k)'
                )
            if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                raise ConfigError(f'{name}."{model}".{resolution} must be a number >= 0')
        prices[model] = {resolution: float(price) for resolution, price in row.items()}
    return prices
