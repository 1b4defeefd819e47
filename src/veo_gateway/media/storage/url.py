"""`VEO_GATEWAY_STORAGE_URL` to a `Storage`: the one place that knows which backends exist."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from veo_gateway.media.storage.base import Storage
from veo_gateway.media.storage.files import LocalStorage
from veo_gateway.media.storage.objects import ObjectStorage

SCHEMES = ("file", "s3", "gs")


def check_storage_url(url: str) -> str:
    """The URL unchanged, or ValueError saying what is wrong with it (quoting it without any
    credentials written into it)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = parts._replace(netloc="…@" + parts.netloc.rpartition("@")[2]).geturl()
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"storage URL {url!r}: the scheme must be file://, s3:// or gs:// "
            "(file:///srv/veo, s3://bucket/prefix, gs://bucket/prefix)"
        )
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(
                f"storage URL {url!r}: a file URL names an absolute path, file:///srv/veo"
            )
    elif not parts.netloc:
        raise ValueError(f"storage URL {url!r}: name the bucket, {parts.scheme}://BUCKET/PREFIX")
    elif parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(
            f"storage URL {url!r}: only {parts.scheme}://BUCKET/PREFIX; credentials, endpoint "
            "and region come from the environment"
        )
    return url


def file_root(url: str | None, data_dir: Path) -> Path:
    """The directory of a `file://` URL, or `data_dir` without a URL."""
    return Path(unquote(urlsplit(url).path)) if url else data_dir


def open_storage(
    url: str | None,
    *,
    data_dir: Path,
    videos_dir: Path | None = None,
    min_free_bytes: int = 0,
) -> Storage:
    """The storage `url` names; None: files under `data_dir`, as `file://` with no URL.

    Files go in `inputs/` and `videos/` under the URL's directory (`videos_dir`, when given,
    for the videos); an object store takes a scratch directory under `data_dir` for the local
    copies that checking a download and making a JPEG need.
    """
    if url is None or url.startswith("file:"):
        root = file_root(url, data_dir)
        return LocalStorage(
            root / "inputs", videos_dir or root / "videos", min_free_bytes=min_free_bytes
        )
    return ObjectStorage.from_url(url, data_dir / "scratch")
