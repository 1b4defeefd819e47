"""The route table as people read it: printed at start-up, checked by the doctor, and named in
the message of a model id that Google no longer serves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from veo_gateway.config import GatewayConfig, Target, UpstreamConfig

# Where Google serves a model on once one of its ids is gone: what the operator can route to.
SUCCESSORS: Mapping[str, str] = {
    "veo-3.1-generate-preview": "Vertex AI serves it as veo-3.1-generate-001 "
    "(GOOGLE_GENAI_USE_VERTEXAI=true with GOOGLE_CLOUD_PROJECT, or a vertex upstream in the "
    "config file)",
    "veo-3.1-fast-generate-preview": "Vertex AI serves it as veo-3.1-fast-generate-001 "
    "(GOOGLE_GENAI_USE_VERTEXAI=true with GOOGLE_CLOUD_PROJECT, or a vertex upstream in the "
    "config file)",
    "veo-3.1-generate-001": "Google announced its deprecation on or after 2026-11-17: route "
    "the name to the id Google's Veo model page names now",
    "veo-3.1-fast-generate-001": "Google announced its deprecation on or after 2026-11-17: "
    "route the name to the id Google's Veo model page names now",
    "veo-3.0-generate-001": "Veo 3.0 was retired on 2026-06-30: route the name to "
    "veo-3.1-generate-preview (Gemini API) or veo-3.1-generate-001 (Vertex AI)",
    "veo-3.0-fast-generate-001": "Veo 3.0 was retired on 2026-06-30: route the name to "
    "veo-3.1-fast-generate-preview (Gemini API) or veo-3.1-fast-generate-001 (Vertex AI)",
    "veo-2.0-generate-001": "Veo 2.0 was retired on 2026-06-30: route the name to a Veo 3.1 model",
}


def describe_upstream(upstream: UpstreamConfig) -> str:
    """The kind of an upstream, in a few words."""
    if upstream.kind == "vertex":
        return f"Vertex AI, project {upstream.project}, location {upstream.location}"
    if upstream.kind == "emulator":
        return "built-in emulator"
    return "Gemini API"


def route_table(config: GatewayConfig, *, embedded: bool = False) -> list[str]:
    """One line per route target: public name -> upstream (its kind), upstream model id; a
    name's targets in the order they are tried."""
    kinds = {u.name: describe_upstream(u) for u in config.upstreams}
    if embedded:
        kinds = dict.fromkeys(kinds, "built-in emulator")
    width = max((len(public) for public in config.routes), default=0)
    lines = ["routes (public model -> upstream, upstream model id; tried in this order):"]
    for public, targets in config.routes.items():
        for index, target in enumerate(targets):
            name = public if index == 0 else ""
            kind = kinds.get(target.upstream, "?")
            lines.append(f"  {name:<{width}} -> {target.upstream} ({kind}), {target.model}")
    return lines


def model_gone(public: str, target: Target, google_message: str, others: Iterable[Target]) -> str:
    """What to tell when Google answers 404 for a route's model id: which id is gone where,
    and what could serve the public name instead."""
    return f"{gone(target, google_message)} {instead(public, target, others)}"


def gone(target: Target, google_message: str) -> str:
    """Which model id is gone, at which upstream, in Google's words."""
    return (
        f"upstream model id {target.model} is gone at upstream {target.upstream!r} (Google "
        f"answered 404: {google_message.rstrip('.')})."
    )


def instead(
    public: str, target: Target, others: Iterable[Target], *, doctor_hint: bool = True
) -> str:
    """The routes that could serve `public` instead of `target`, and where Google moved it."""
    alternatives = [f"{t.upstream} -> {t.model}" for t in others if t != target]
    if alternatives:
        text = (
            f"Other routes that could serve {public}: {', '.join(alternatives)}; remove "
            f"{target.upstream} -> {target.model} from the route."
        )
    else:
        text = f"No other route serves {public} here."
    if hint := SUCCESSORS.get(target.model):
        text += f" {hint}."
    return text + (" `veo-gateway doctor` checks every route." if doctor_hint else "")
