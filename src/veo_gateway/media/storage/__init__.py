"""Where task inputs, finished videos and the JPEGs made from them are kept: one small protocol,
`Storage`, with two backends chosen once from `VEO_GATEWAY_STORAGE_URL`:

    file:///path          files.py    local directories, free-space floor, temp file + rename
    s3://bucket/prefix    objects.py  an object store through obstore (S3 and S3-compatible,
    gs://bucket/prefix                Google Cloud Storage), multipart uploads, ranged reads

The worker, the retention sweeper and the API only ever hold a `Storage`, and read what it
stored through a `Blob`; nothing outside this package knows which backend it has.
"""

from __future__ import annotations

from veo_gateway.media.storage.base import Blob, CheckVideo, Health, MakeStill, Storage
from veo_gateway.media.storage.files import LocalStorage, OpenedFile
from veo_gateway.media.storage.space import (
    TEMP_PREFIX,
    describe_bytes,
    is_out_of_space,
    out_of_space,
    space_errors,
)
from veo_gateway.media.storage.url import open_storage

__all__ = [
    "TEMP_PREFIX",
    "Blob",
    "CheckVideo",
    "Health",
    "LocalStorage",
    "MakeStill",
    "OpenedFile",
    "Storage",
    "describe_bytes",
    "is_out_of_space",
    "open_storage",
    "out_of_space",
    "space_errors",
]
