"""A request's durable form: its fields as JSON in the task row, its images as stored files."""

from __future__ import annotations

import mimetypes
from typing import Any

from veo_gateway.domain.request import Image, ReferenceImage, SourceVideo, VideoRequest
from veo_gateway.media.storage import Storage

_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


async def save_request(
    storage: Storage, task_id: str, request: VideoRequest[Image]
) -> dict[str, Any]:
    """Store the request's images as files; returns the JSON to keep in the task row."""

    async def save(image: Image, name: str) -> dict[str, Any]:
        ext = _EXTENSIONS.get(image.mime_type) or mimetypes.guess_extension(image.mime_type) or ""
        blob = await storage.save_input(task_id, name + ext, image.data)
        return {"blob": blob, "mime_type": image.mime_type, "field": image.field}

    stored: dict[str, Any] = {
        "model": request.model,
        "prompt": request.prompt,
        "image": await save(request.image, "image") if request.image else None,
        "last_frame": await save(request.last_frame, "last-frame") if request.last_frame else None,
        "reference_images": [
            {"image": await save(ref.image, f"reference-{i}"), "reference_type": ref.reference_type}
            for i, ref in enumerate(request.reference_images)
        ],
        "aspect_ratio": request.aspect_ratio,
        "duration_seconds": request.duration_seconds,
        "negative_prompt": request.negative_prompt,
        "person_generation": request.person_generation,
        "resolution": request.resolution,
        "extra_parameters": dict(request.extra_parameters),
    }
    if (video := request.video) is not None:
        # The bytes only when an upstream may be sent them (Vertex AI): the Gemini API is sent
        # the URI alone.
        blob = (
            None
            if video.data is None
            else await storage.save_input(task_id, "video.mp4", video.data)
        )
        stored["video"] = {
            "task_id": video.task_id,
            "blob": blob,
            "uri": video.uri,
            "gcs_uri": video.gcs_uri,
            "mime_type": video.mime_type,
            "field": video.field,
            "seconds": video.seconds,
            "credential": video.credential,
        }
    return stored


async def load_request(
    storage: Storage, task_id: str, stored: dict[str, Any]
) -> VideoRequest[Image]:
    """Rebuild the request from its stored form (for submission, after any restart)."""

    async def load(entry: dict[str, Any] | None) -> Image | None:
        if entry is None:
            return None
        data = await storage.read_input(task_id, entry["blob"])
        return Image(data=data, mime_type=entry["mime_type"], field=entry["field"])

    video = None
    if entry := stored.get("video"):
        blob = entry.get("blob")
        video = SourceVideo(
            task_id=entry.get("task_id"),
            data=None if blob is None else await storage.read_input(task_id, blob),
            uri=entry.get("uri"),
            gcs_uri=entry.get("gcs_uri"),
            mime_type=entry.get("mime_type") or "video/mp4",
            field=entry.get("field") or "video",
            seconds=entry.get("seconds"),
            credential=entry.get("credential"),
        )
    refs = []
    for ref in stored.get("reference_images", []):
        image = await load(ref["image"])
        assert image is not None
        refs.append(ReferenceImage(image=image, reference_type=ref["reference_type"]))
    return VideoRequest(
        model=stored["model"],
        prompt=stored["prompt"],
        image=await load(stored.get("image")),
        last_frame=await load(stored.get("last_frame")),
        reference_images=tuple(refs),
        aspect_ratio=stored.get("aspect_ratio"),
        duration_seconds=stored.get("duration_seconds"),
        negative_prompt=stored.get("negative_prompt"),
        person_generation=stored.get("person_generation"),
        resolution=stored.get("resolution"),
        extra_parameters=stored.get("extra_parameters") or {},
        video=video,
    )
