"""`GET /v1/models`: the models served and what each can do, enough to build a form from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from veo_gateway.api import schemas
from veo_gateway.api.deps import OwnerDep, ServicesDep
from veo_gateway.api.openapi import errors, ok
from veo_gateway.domain import options
from veo_gateway.domain.catalog import Catalog, ModelCapabilities
from veo_gateway.domain.pricing import PriceTable

router = APIRouter()

IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"]


def describe_options(row: ModelCapabilities, kinds: frozenset[str]) -> dict[str, Any]:
    """The `metadata` options the model's route takes, each with the values it may have."""
    if row.protocol == "interactions":
        return {}  # Gemini Omni takes none of Veo's options (domain/interactions.py)
    values: dict[str, Any] = {
        options.SAMPLE_COUNT: {"min": 1, "max": options.max_samples(row, kinds), "default": 1},
        options.SEED: {"min": 0, "max": options.MAX_SEED},
        options.GENERATE_AUDIO: {"values": [True, False] if row.audio else [False]},
        options.ENHANCE_PROMPT: {"values": [True, False]},
        options.RESIZE_MODE: {
            "values": [v.lower() for v in options.RESIZE_MODES],
            "needs_image": True,
        },
        options.COMPRESSION_QUALITY: {"values": [v.lower() for v in options.COMPRESSION_QUALITIES]},
    }
    return {key: values[key] for key in options.accepted(kinds)}


def describe_prices(
    row: ModelCapabilities, kinds: frozenset[str], prices: PriceTable
) -> dict[str, Any]:
    """USD per second of each video (per sample), by resolution, with sound and, where the
    route can switch it off, without."""
    silent = (
        row.audio
        and row.protocol != "interactions"  # Omni cannot switch its soundtrack off
        and options.GENERATE_AUDIO in options.accepted(kinds)
    )
    table: dict[str, Any] = {}
    for resolution in row.resolutions:
        price = {"per_second": prices.per_second(row.name, resolution, row.audio)}
        if silent:
            price["per_second_without_audio"] = prices.per_second(row.name, resolution, False)
        table[resolution] = price
    return {"currency": "USD", "per_sample": True, "by_resolution": table}


def describe(
    row: ModelCapabilities,
    max_image_bytes: int,
    catalog: Catalog | None = None,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    """One model as `GET /v1/models` lists it."""
    kinds = (catalog or Catalog([row])).kinds(row.name)
    return {
        "id": row.name,
        "object": "model",
        "owned_by": "google",
        "capabilities": {
            "modes": list(row.modes),
            "durations": list(row.durations),
            "default_duration": row.default_duration,
            "aspect_ratios": list(row.aspect_ratios),
            "default_aspect_ratio": row.default_aspect_ratio,
            "resolutions": list(row.resolutions),
            "default_resolution": row.default_resolution,
            # These resolutions, interpolation and (where true) reference images need
            # `long_duration`.
            "resolutions_need_long_duration": sorted(row.resolutions_need_8s),
            "references_need_long_duration": row.references_need_long,
            "long_duration": row.long_duration,
            # Whether `metadata.negativePrompt` is taken (Gemini Omni has none).
            "negative_prompt": row.protocol != "interactions",
            "audio": row.audio,
            "max_images": row.max_images,
            "max_reference_images": row.max_reference_images,
            "reference_aspect_ratios": list(row.reference_aspect_ratios),
            "person_generation": [] if row.protocol == "interactions" else ["allow_adult"],
            "max_prompt_tokens": row.max_prompt_tokens,
            "image_types": IMAGE_TYPES,
            "max_image_bytes": max_image_bytes,
            # Which upstream protocols its route may use ("gemini", "vertex"), the videos one
            # request may ask for, and the other options it takes (`metadata.*`).
            "upstreams": sorted(kinds),
            "max_samples": options.max_samples(row, kinds),
            "options": describe_options(row, kinds),
            # Whether it extends a finished video (`video`, POST /v1/videos/extensions).
            "extension": row.extension,
            # How Google is asked ("predict": Veo; "interactions": Gemini Omni), and whether
            # Google's model can extend videos (served here only where `extension` says so).
            "protocol": row.protocol,
            "upstream_extension": row.can_extend,
        },
        "pricing": describe_prices(row, kinds, prices or PriceTable()),
    }


@router.get("/v1/models", responses={**ok(schemas.ModelList, "Every served model."), **errors(401)})
async def list_models(services: ServicesDep, _owner: OwnerDep) -> dict[str, Any]:
    """Every public model with its capabilities."""
    limit = services.settings.image_max_bytes
    return {
        "object": "list",
        "data": [
            describe(row, limit, services.catalog, services.prices)
            for row in services.catalog.values()
        ],
        # Where a create that names no model goes; the playground preselects it.
        "default_model": services.catalog.default_model,
    }
