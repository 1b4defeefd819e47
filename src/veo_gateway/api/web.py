"""The web playground: a static page at `/` and its script and style, under a strict CSP.

No build step: the files under `veo_gateway/web/` are shipped as package data and served as they
are. The page talks to the public API with the key the user types in; it has no privileges of
its own, so these routes need no authentication.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from veo_gateway.api.openapi import errors
from veo_gateway.errors import NotFound

router = APIRouter()

# No inline script or style: everything comes from this origin. Videos are played from blob URLs
# (fetched with the key in a header, never in a URL), image previews are data or blob URLs.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

# The script is a handful of ES modules: browsers refuse a module served under any type but a
# JavaScript one, and `script-src 'self'` covers their imports.
_SCRIPT = "text/javascript; charset=utf-8"
_ASSETS = {
    "app.js": _SCRIPT,
    "api.js": _SCRIPT,
    "dom.js": _SCRIPT,
    "form.js": _SCRIPT,
    "tasks.js": _SCRIPT,
    "style.css": "text/css; charset=utf-8",
}


def _read(name: str) -> bytes:
    return (resources.files("veo_gateway") / "web" / name).read_bytes()


def _asset_response(name: str, media_type: str) -> Response:
    return Response(
        _read(name),
        media_type=media_type,
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # Small files that change with the package: revalidate rather than go stale.
            "Cache-Control": "no-cache",
        },
    )


@router.get(
    "/",
    responses={
        200: {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
        **errors(),
    },
)
async def playground() -> Response:
    """The playground page."""
    return _asset_response("index.html", "text/html; charset=utf-8")


@router.get(
    "/web/{name}",
    responses={
        200: {
            "description": "A script module or the style sheet.",
            "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
            },
        },
        **errors(404),
    },
)
async def asset(name: str) -> Response:
    """The page's script modules and style sheet; nothing else under `web/` is served."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no web asset named {name!r}", param="name")
    return _asset_response(name, media_type)
