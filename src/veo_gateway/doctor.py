"""`veo-gateway doctor`: every upstream credential and route checked with calls that start no
paid job, each finding with its fix.

The read-only calls, per protocol (what Google answers them with):

- Gemini API: `GET {base}/v1beta/models/{model}` with `x-goog-api-key` (GetModel). A bad key
  is a 400 "API key not valid" (a missing one 403) before the model is looked up; an unknown
  model, 404.
- Vertex AI: an access token first (ADC, a service-account file, or the static one), then
  `GET {base}/v1/publishers/google/models/{model}` with `Authorization: Bearer` (the SDK's
  `models.get` on Vertex). A refused token is a 401 (403: no permission); an unknown model,
  404.

The emulator answers the same calls the same way, so a drill (`EMULATOR_RETIRED_MODELS`, a bad
key) shows what a broken route looks like.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from veo_gateway.config import GatewayConfig, Target, UpstreamConfig
from veo_gateway.errors import UpstreamError, UpstreamUnavailable
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.pool import rejects_credential
from veo_gateway.providers.registry import GEMINI_BASE_URL, credential_id
from veo_gateway.providers.vertex import TokenSource, token_source_for, vertex_base_url
from veo_gateway.routes import describe_upstream, gone, instead


@dataclass(frozen=True)
class Finding:
    """One thing checked: whether it works (None: could not tell), what, and the fix."""

    ok: bool | None
    subject: str
    detail: str
    fix: str | None = None

    def lines(self) -> list[str]:
        """The finding as printed."""
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[self.ok]
        lines = [f"{mark}  {self.subject}: {self.detail}"]
        if self.fix:
            lines.append(f"      fix: {self.fix}")
        return lines


class Probe(Protocol):
    """Read-only calls to one credential of an upstream."""

    id: str

    async def get_model(self, model: str) -> None:
        """Look the model id up; raises UpstreamError as the upstream answers."""
        ...


class GeminiProbe:
    """The Gemini API's GetModel with one key."""

    def __init__(self, cid: str, key: str, base_url: str, client: UpstreamHttp) -> None:
        self.id = cid
        self._key = key
        self._base = base_url.rstrip("/")
        self._client = client

    async def get_model(self, model: str) -> None:
        url = f"{self._base}/v1beta/models/{model}"
        await self._client.call_json("GET", url, {"x-goog-api-key": self._key})


class VertexProbe:
    """Vertex AI's publisher model read with the upstream's token."""

    def __init__(
        self, cid: str, upstream: UpstreamConfig, tokens: TokenSource, client: UpstreamHttp
    ) -> None:
        self.id = cid
        self._base = vertex_base_url(upstream.location, upstream.base_url)
        self._tokens = tokens
        self._client = client

    async def get_model(self, model: str) -> None:
        headers = {"Authorization": f"Bearer {await self._tokens.token()}"}
        url = f"{self._base}/v1/publishers/google/models/{model}"
        await self._client.call_json("GET", url, headers)


def probes(upstream: UpstreamConfig, client: UpstreamHttp) -> list[Probe]:
    """One probe per credential of the upstream (none for an in-process emulator)."""
    if upstream.kind == "gemini":
        base = upstream.base_url or GEMINI_BASE_URL
        return [
            GeminiProbe(credential_id(upstream, key), key, base, client)
            for key in upstream.api_keys
        ]
    if upstream.kind == "vertex":
        return [VertexProbe(credential_id(upstream), upstream, token_source_for(upstream), client)]
    return []


def _credential_fix(upstream: UpstreamConfig, error: UpstreamError) -> str:
    if upstream.kind == "vertex":
        if error.code == 403 or error.google_status == "PERMISSION_DENIED":
            return (
                f"give the identity access to project {upstream.project} (role Vertex AI User, "
                "roles/aiplatform.user), or use another project"
            )
        return (
            "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
            "to a service-account key file (config: service_account_file), or give a fresh "
            "token in VEO_GATEWAY_VERTEX_ACCESS_TOKEN (config: access_token)"
        )
    return (
        "replace the key in GOOGLE_API_KEY / GEMINI_API_KEY (config: the upstream's api_keys); "
        "keys are made at https://aistudio.google.com/apikey"
    )


def _unreachable_fix(upstream: UpstreamConfig) -> str:
    if upstream.kind == "vertex":
        return "check GOOGLE_VERTEX_BASE_URL / GOOGLE_CLOUD_LOCATION (config: base_url, location)"
    return "check VEO_GATEWAY_GEMINI_BASE_URL (config: the upstream's base_url)"


async def diagnose(
    config: GatewayConfig, client: UpstreamHttp, *, embedded: bool = False
) -> list[Finding]:
    """Check every credential, then every route target with a credential that works."""
    findings: list[Finding] = []
    models_of: dict[str, list[str]] = {}
    for targets in config.routes.values():
        for target in targets:
            models = models_of.setdefault(target.upstream, [])
            if target.model not in models:
                models.append(target.model)
    working: dict[str, Probe] = {}
    for upstream in config.upstreams:
        subject = f"upstream {upstream.name} ({describe_upstream(upstream)})"
        if upstream.kind == "emulator" or embedded:
            findings.append(
                Finding(True, subject, "started in-process by `serve`; nothing at Google to check")
            )
            continue
        first = (models_of.get(upstream.name) or ["veo-3.1-generate-001"])[0]
        for probe in probes(upstream, client):
            finding = await _check_credential(upstream, probe, first)
            findings.append(finding)
            if finding.ok is not False:
                working.setdefault(upstream.name, probe)
    upstreams = {u.name: u for u in config.upstreams}
    for public, targets in config.routes.items():
        for target in targets:
            upstream = upstreams[target.upstream]
            if upstream.kind == "emulator" or embedded:
                continue
            findings.append(
                await _check_route(public, target, targets, upstream, working.get(upstream.name))
            )
    return findings


async def _check_credential(upstream: UpstreamConfig, probe: Probe, model: str) -> Finding:
    subject = f"credential {probe.id} ({describe_upstream(upstream)})"
    try:
        await probe.get_model(model)
    except UpstreamUnavailable as exc:
        return Finding(False, subject, f"unreachable: {exc.message}", _unreachable_fix(upstream))
    except UpstreamError as exc:
        if rejects_credential(exc):
            detail = f"refused (HTTP {exc.code} {exc.google_status}: {exc.message})"
            return Finding(False, subject, detail, _credential_fix(upstream, exc))
        if exc.code == 429:
            return Finding(None, subject, f"rate limited just now, not checked ({exc.message})")
        if exc.code != 404:  # a 404 is the model's problem, told by its route
            return Finding(False, subject, f"HTTP {exc.code}: {exc.message}")
    return Finding(True, subject, "accepted")


async def _check_route(
    public: str,
    target: Target,
    targets: Iterable[Target],
    upstream: UpstreamConfig,
    probe: Probe | None,
) -> Finding:
    subject = f"route {public} -> {target.upstream}, {target.model}"
    if probe is None:
        # The broken credential is the finding; this route is only unknown.
        return Finding(None, subject, "not checked: no credential of the upstream works")
    try:
        await probe.get_model(target.model)
    except UpstreamUnavailable as exc:
        return Finding(False, subject, f"unreachable: {exc.message}", _unreachable_fix(upstream))
    except UpstreamError as exc:
        if exc.code == 404:
            fix = instead(public, target, targets, doctor_hint=False)
            return Finding(False, subject, gone(target, exc.message), fix)
        if exc.code == 429:
            return Finding(None, subject, f"rate limited just now, not checked ({exc.message})")
        return Finding(False, subject, f"HTTP {exc.code} {exc.google_status}: {exc.message}")
    return Finding(True, subject, f"{target.upstream} serves {target.model}")
