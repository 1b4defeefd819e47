"""`GET /v1/models`: the models served and what each can do, enough to build a form from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from veo_gateway.api import schemas
from veo_gateway.api.deps import OwnerDep, ServicesDep
from veo_gateway.api.openapi import errors, ok
from veo_gateway.domain.catalog import ModelCapabilities

router = APIRouter()

IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"]


def describe(row: ModelCapabilities, max_image_bytes: int) -> dict[str, Any]:
    """One model as `GET /v1/models` lists it."""
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
            # These resolutions, interpolation and reference images need `long_duration`.
            "resolutions_need_long_duration": sorted(row.resolutions_need_8s),
            "long_duration": row.long_duration,
            "audio": row.audio,
            "max_images": row.max_images,
            "max_reference_images": row.max_reference_images,
            "reference_aspect_ratios": list(row.reference_aspect_ratios),
            "person_generation": ["allow_adult"],
            "max_prompt_tokens": row.max_prompt_tokens,
            "image_types": IMAGE_TYPES,
            "max_image_bytes": max_image_bytes,
        },
    }


@router.get("/v1/models", responses={**ok(schemas.ModelList, "Every served model."), **errors(401)})
async def list_models(services: ServicesDep, _owner: OwnerDep) -> dict[str, Any]:
    """Every public model with its capabilities."""
    limit = services.settings.image_max_bytes
    return {
        "object": "list",
        "data": [describe(row, limit) for row in services.catalog.values()],
        # Where a create that names no model goes; the playground preselects it.
        "default_model": services.catalog.default_model,
    }
