"""OpenAI's video operations that Veo has no counterpart for: a clear 400, never a 404 or 405.

The `openai` SDK's `videos.remix` (`POST /videos/{id}/remix`), `videos.edit` (`POST
/videos/edits`), `videos.create_character` (`POST /videos/characters`) and
`videos.get_character` (`GET /videos/characters/{id}`) reach these routes; each answer says
what Veo does instead. The key is checked first, as everywhere.
"""

from __future__ import annotations

from fastapi import APIRouter

from veo_gateway.api.deps import OwnerDep
from veo_gateway.api.openapi import errors
from veo_gateway.errors import InvalidArgument

router = APIRouter()

_NEW_VIDEO = "Create a new video with POST /v1/videos"

REMIX = (
    "Veo has no remix operation: a finished video cannot be changed by a new prompt. "
    f"{_NEW_VIDEO} with the changed prompt; on a Vertex AI model the same metadata.seed gives "
    "a close variation, and a frame of this video (content?variant=thumbnail) can be its "
    "input_reference."
)
EDIT = (
    "Veo has no edit operation: it makes videos from a prompt and optional images, and does "
    f"not change an uploaded or generated video. {_NEW_VIDEO}; to start from a frame of an "
    "existing video, send that frame as input_reference (images[0] in the spec's JSON)."
)
CHARACTERS = (
    "Veo has no characters: nothing is kept between videos. To keep a person, animal or "
    "object the same across videos, send up to 3 images of it as metadata.referenceImages "
    f"(referenceType asset) on a model that takes them (see GET /v1/models). {_NEW_VIDEO}."
)

_REFUSED = errors(400, 401)


@router.post("/v1/videos/{video_id}/remix", responses=_REFUSED)
async def remix(video_id: str, _owner: OwnerDep) -> None:
    """OpenAI's remix: refused, with what to do instead."""
    raise InvalidArgument(REMIX)


@router.post("/v1/videos/edits", responses=_REFUSED)
async def edit(_owner: OwnerDep) -> None:
    """OpenAI's edit: refused, with what to do instead."""
    raise InvalidArgument(EDIT)


@router.post("/v1/videos/characters", responses=_REFUSED)
async def create_character(_owner: OwnerDep) -> None:
    """OpenAI's create_character: refused, with what to do instead."""
    raise InvalidArgument(CHARACTERS)


@router.get("/v1/videos/characters/{character_id}", responses=_REFUSED)
async def get_character(character_id: str, _owner: OwnerDep) -> None:
    """OpenAI's get_character: refused, with what to do instead."""
    raise InvalidArgument(CHARACTERS)
