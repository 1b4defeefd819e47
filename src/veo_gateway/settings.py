"""Typed settings, read once from the environment (`VEO_GATEWAY_*`, and Google's own names:
`GEMINI_API_KEY`, `GOOGLE_API_KEY`, `GOOGLE_GENAI_USE_VERTEXAI`, `GOOGLE_CLOUD_*`, ...).

Every field's description is its documentation: the README's settings table must list each
environment variable (a test checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def parse_latency(value: str) -> tuple[float, float]:
    """`"5"` -> (5, 5); `"2-6"` -> (2, 6). Raises ValueError on anything else."""
    text = value.strip()
    low_text, sep, high_text = text.partition("-")
    low = float(low_text)
    high = float(high_text) if sep else low
    if low < 0 or high < low:
        raise ValueError(f"latency must be seconds or a 'min-max' range, got {value!r}")
    return low, high


class Settings(BaseSettings):
    """Everything an operator can set. Built once and passed down; never read from globals."""

    model_config = SettingsConfigDict(
        env_prefix="VEO_GATEWAY_", extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", description="Address `veo-gateway serve` listens on.")
    port: int = Field(8000, description="Port `veo-gateway serve` listens on.")
    data_dir: Path = Field(
        Path("./data"),
        description="Where the SQLite database, stored inputs and videos live.",
    )
    database_url: str | None = Field(
        None,
        description="The database: sqlite:///PATH or postgresql://USER:PASSWORD@HOST:5432/DB "
        "(also postgres:// and postgresql+asyncpg://; driven by asyncpg). "
        "Default: SQLite at DATA_DIR/veo-gateway.db.",
    )
    videos_dir: Path | None = Field(
        None,
        description="Where finished videos are stored, with file storage. Default: "
        "DATA_DIR/videos (or videos/ under STORAGE_URL's directory).",
    )
    storage_url: str | None = Field(
        None,
        description="Where inputs, videos and their JPEGs are kept: file:///PATH (inputs/ and "
        "videos/ under it), s3://BUCKET/PREFIX (AWS S3 or any S3-compatible store; endpoint, "
        "region and credentials from the standard AWS_* variables, AWS_ENDPOINT_URL and "
        "AWS_ALLOW_HTTP among them) or gs://BUCKET/PREFIX (Google Cloud Storage, Application "
        "Default Credentials). Every replica must use the same one. Default: files under "
        "DATA_DIR.",
    )
    content_redirect: bool = Field(
        False,
        description="GET /v1/videos/{id}/content answers, after the key check, with a 307 "
        "redirect to a presigned URL of the object store, so the bytes never pass through the "
        "gateway (object storage only: with file storage the video is served as usual, and "
        "the start-up log says so). HEAD, the JPEG variants and the gateway's own page "
        "(the playground) are always served.",
    )
    content_redirect_seconds: int = Field(
        300,
        ge=1,
        le=7 * 86400,
        description="Seconds a presigned URL of CONTENT_REDIRECT stays valid.",
    )
    api_keys: str = Field(
        "",
        description="Comma-separated client API keys accepted besides the stored ones.",
    )
    key_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="Seconds a stored client key, once found, is trusted without looking it up "
        "again. A revocation is announced to every process on PostgreSQL (and to the process "
        "that revoked it), which drop the key at once; on SQLite a key revoked from the command "
        "line stops working within this time. 0: every request looks its key up.",
    )
    gemini_api_key: str | None = Field(
        None,
        validation_alias=AliasChoices("GEMINI_API_KEY", "VEO_GATEWAY_GEMINI_API_KEY"),
        description="Gemini API key(s), comma-separated. When set, tasks go to the Gemini API; "
        "unset (and no config file), to the built-in emulator.",
    )
    google_api_key: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_API_KEY"),
        description="Gemini API key(s), comma-separated, under the google-genai SDK's name. "
        "When both are set it wins over GEMINI_API_KEY, as in the SDK, and a warning says "
        "'Both GOOGLE_API_KEY and GEMINI_API_KEY are set. Using GOOGLE_API_KEY.'",
    )
    google_genai_use_vertexai: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_GENAI_USE_VERTEXAI"),
        description="`true` or `1` (any case; anything else is false, as in the google-genai "
        "SDK): with no config file, tasks go to Vertex AI (GOOGLE_CLOUD_PROJECT, "
        "GOOGLE_CLOUD_LOCATION), not to the Gemini API.",
    )
    google_genai_use_enterprise: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_GENAI_USE_ENTERPRISE"),
        description="The newer name of GOOGLE_GENAI_USE_VERTEXAI (Vertex AI is now also called "
        "Gemini Enterprise Agent Platform); when both are set and differ, this one wins, with "
        "the SDK's warning.",
    )
    google_cloud_project: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_CLOUD_PROJECT"),
        description="Vertex AI: the Google Cloud project. Unset: the project of the Application "
        "Default Credentials (as the SDK does), unless a static token or a base URL is set.",
    )
    google_cloud_location: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_CLOUD_LOCATION"),
        description="Vertex AI: the location (`us-central1`, ...). Unset: `global`, served at "
        "https://aiplatform.googleapis.com, as the SDK does; `us` and `eu` use the "
        "multi-region hosts `aiplatform.{us,eu}.rep.googleapis.com`.",
    )
    google_vertex_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_VERTEX_BASE_URL"),
        description="Vertex AI: another base URL for the API and the Cloud Storage downloads "
        "(a standalone emulator, a proxy). Unset: Google's host for the location.",
    )
    vertex_access_token: str | None = Field(
        None,
        description="Vertex AI: a static OAuth access token sent as is, where no Google "
        "credentials exist (tests, short-lived tokens minted elsewhere). Unset: Application "
        "Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server).",
    )
    config: Path | None = Field(
        None,
        description="Path of the operator config file (TOML): upstreams, routes, model "
        "capabilities. Unset: the environment alone describes one upstream.",
    )
    upstream_rpm: int = Field(
        10,
        description="Without a config file: submissions per minute per Gemini API key, or for "
        "the Vertex AI project.",
    )
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com",
        validation_alias=AliasChoices("VEO_GATEWAY_GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"),
        description="Base URL of the Gemini API (point it at a standalone emulator to test); "
        "the SDK's GOOGLE_GEMINI_BASE_URL is read too, this name first.",
    )
    allow_private_image_urls: bool = Field(
        False,
        description="Allow image URLs that resolve to private, loopback or link-local "
        "addresses (cloud metadata addresses stay refused).",
    )
    max_body_bytes: int = Field(
        64 * 1024 * 1024, description="Largest request body accepted (bytes); larger gets 413."
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Largest request head accepted: the URL and all headers together (bytes); "
        "larger gets 431.",
    )
    image_max_bytes: int = Field(
        20 * 1024 * 1024, description="Largest image accepted, downloaded or inline (bytes)."
    )
    image_max_pixels: int = Field(
        40_000_000, description="Largest image accepted, in pixels (decompression-bomb cap)."
    )
    image_fetch_timeout: float = Field(
        15.0, description="Seconds allowed to download one image URL, redirects included."
    )
    image_max_redirects: int = Field(3, description="Redirects followed for one image URL.")
    worker_enabled: bool = Field(
        True,
        description="Run the background work (submit, poll, download, webhooks, retention) "
        "inside the serve process. false (or `serve --no-worker`): the API only, with "
        "`veo-gateway worker` running beside it.",
    )
    worker_idle_seconds: float = Field(
        5.0,
        gt=0,
        description="Seconds the worker and the webhook dispatcher sleep when nothing is due "
        "before they look for work anyway. A created or finished task wakes them at once (on "
        "PostgreSQL, in any process), and a webhook retry wakes its dispatcher when due; this "
        "look is the fallback.",
    )
    worker_port: int = Field(
        8002,
        description="Port of `veo-gateway worker`'s listener (/healthz, /readyz, /metrics; "
        "no public API).",
    )
    max_in_flight: int = Field(
        20, description="Upstream operations in flight at once; more tasks wait queued."
    )
    poll_interval: float = Field(
        5.0, description="Seconds between polls of one upstream operation (jittered ±20%)."
    )
    first_poll_after: float | None = Field(
        None,
        gt=0,
        description="Seconds from submission to an operation's first poll; unset: near the "
        "model's fastest latency (its catalog row, then what finished tasks took).",
    )
    poll_concurrency: int = Field(
        16, description="Upstream polls and downloads running at the same moment."
    )
    task_timeout: float = Field(
        1200.0, description="Seconds after submission before a task is failed as timed out."
    )
    inline_submit_timeout: float = Field(
        10.0,
        description="Seconds a create waits for its own upstream submission when a credential "
        "is free, so a refusal by Google reaches the client directly.",
    )
    submit_attempts: int = Field(
        5, description="Submissions tried (on 429, 5xx and network errors) before a task fails."
    )
    upstream_timeout: float = Field(
        60.0, description="Seconds allowed for one upstream call (downloads: between bytes)."
    )
    lease_seconds: float = Field(
        30.0,
        gt=0,
        description="Seconds a worker's claim on a task lasts unless renewed; a live worker "
        "renews the claims of its calls still running every third of this, so a dead worker's "
        "tasks are taken over by another worker within this time.",
    )
    emulator_latency: str = Field(
        "4-8",
        description="Emulator: seconds an operation takes, or a 'min-max' range.",
    )
    emulator_host: str = Field(
        "127.0.0.1", description="`veo-gateway emulator`: address to listen on."
    )
    emulator_port: int = Field(8001, description="`veo-gateway emulator`: port to listen on.")
    emulator_api_keys: str = Field(
        "",
        description="Emulator: comma-separated keys it accepts; empty accepts any non-empty key.",
    )
    emulator_faults: str = Field(
        "",
        description="Emulator: faults to inject, e.g. `submit.429=0.1,*.500=0.05,seed=7` "
        "(see Fault injection).",
    )
    emulator_quota_rpm: int | None = Field(
        None, gt=0, description="Emulator: submissions per minute per key or token (429 past it)."
    )
    emulator_max_in_flight: int | None = Field(
        None, gt=0, description="Emulator: unfinished operations per key or token (429 past it)."
    )
    emulator_request_log: Path | None = Field(
        None,
        description="Emulator: a file to which every submission call is appended as a JSON "
        "line (times, credential, status, prompt, operation, injected outcome), for tests.",
    )
    emulator_vertex_tokens: str = Field(
        "",
        description="Emulator: comma-separated Vertex bearer tokens it accepts; empty accepts any.",
    )
    emulator_retired_models: str = Field(
        "",
        description="Emulator: comma-separated model ids it answers 404 for on both protocols "
        "(submissions and model reads), as Google does for a model it shut down; a drill for "
        "`veo-gateway doctor` and the gateway's message.",
    )
    emulator_render: Literal["each", "once"] = Field(
        "each",
        description="Emulator: `each` renders a video for every operation (showing its prompt "
        "and images); `once` renders one per output shape (model, duration, aspect ratio, "
        "resolution) and serves it to every operation of that shape, for benchmarks.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    log_format: Literal["json", "text"] = Field(
        "json",
        description="Log lines as JSON objects (one per line) or as text for a terminal.",
    )
    access_log: Literal["all", "errors", "off"] = Field(
        "all",
        description="Access-log lines (logger veo_gateway.access, level info): one per request, "
        "only for answers with status 400 or more, or none.",
    )
    admin_token: str | None = Field(
        None,
        min_length=16,
        description="Opens the admin API under `/admin/` (keys and usage) to "
        "`Authorization: Bearer TOKEN` (at least 16 characters); unset, the admin API is "
        "disabled (403).",
    )
    metrics_token: str | None = Field(
        None,
        description="When set, `GET /metrics` needs `Authorization: Bearer TOKEN`; unset, it is "
        "open (do not expose it publicly).",
    )

    retention_days: float = Field(
        7.0,
        ge=0,
        description="Days a finished task's video, thumbnails and input images are kept after "
        "it finished; then they are deleted and `content` answers 410 (the task record stays). "
        "Fractions allowed; 0 keeps them forever.",
    )
    storage_max_bytes: int | None = Field(
        None,
        gt=0,
        description="Cap on the bytes of stored videos: past it, the oldest finished tasks' "
        "files are deleted early (as by the retention) until the total is under it. Unset: no "
        "cap.",
    )
    min_free_bytes: int = Field(
        1024**3,
        ge=0,
        description="Free-space floor (bytes) of the filesystems holding the inputs and videos: "
        "at or under it, creates are refused with 507, finished videos wait at the upstream "
        "before being downloaded, and /readyz fails. 0: only a full disk stops new work.",
    )

    webhook_urls: str = Field(
        "",
        description="Comma-separated http(s) endpoints that receive every `video.completed` and "
        "`video.failed` event (needs WEBHOOK_SECRET).",
    )
    webhook_secret: str | None = Field(
        None,
        description="Secret that signs webhook events (Standard Webhooks): `whsec_<base64>` or "
        "any string; several separated by spaces during a rotation. Needed by WEBHOOK_URLS and "
        "by a request's `callback_url`.",
    )
    allow_private_webhook_urls: bool = Field(
        False,
        description="Allow webhook URLs that resolve to private, loopback or link-local "
        "addresses (cloud metadata addresses stay refused).",
    )
    webhook_timeout: float = Field(
        10.0, gt=0, description="Seconds allowed for one webhook delivery attempt."
    )
    webhook_retry_base: float = Field(
        5.0,
        gt=0,
        description="Seconds before the first webhook retry; doubled after each failure "
        "(±20 % jitter), at most an hour.",
    )
    webhook_retry_for: float = Field(
        24 * 3600.0,
        gt=0,
        description="Seconds after an event during which its delivery is retried; then it is "
        "given up (state failed).",
    )

    @model_validator(mode="after")
    def _check_webhooks(self) -> Settings:
        from veo_gateway.webhooks.signing import parse_secrets

        secrets = parse_secrets(self.webhook_secret or "")
        if self.webhook_endpoints and not secrets:
            raise ValueError("VEO_GATEWAY_WEBHOOK_URLS needs VEO_GATEWAY_WEBHOOK_SECRET")
        for url in self.webhook_endpoints:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL {url!r} must start with http:// or https://")
        return self

    @property
    def webhook_endpoints(self) -> list[str]:
        """The operator's webhook endpoints, split and stripped."""
        return [url.strip() for url in self.webhook_urls.split(",") if url.strip()]

    @property
    def webhook_secrets(self) -> list[str]:
        """The webhook signing secrets (several during a rotation)."""
        from veo_gateway.webhooks.signing import parse_secrets

        return parse_secrets(self.webhook_secret or "")

    @field_validator("emulator_faults")
    @classmethod
    def _check_faults(cls, value: str) -> str:
        from veo_gateway.emulator.faults import Faults

        Faults.parse(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        from veo_gateway.store.database import database_url

        if value:
            database_url(value)  # its message names the setting, never the value (a password)
        return value

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None) -> str | None:
        from veo_gateway.media.storage.url import check_storage_url

        return None if not value else check_storage_url(value)

    @field_validator("emulator_latency")
    @classmethod
    def _check_latency(cls, value: str) -> str:
        parse_latency(value)
        return value

    @property
    def client_keys(self) -> list[str]:
        """The keys of `api_keys`, split and stripped."""
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            from veo_gateway.store.database import database_url

            return database_url(self.database_url).render_as_string(hide_password=False)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'veo-gateway.db').resolve()}"

    @property
    def resolved_videos_dir(self) -> Path:
        """Where finished videos are stored with file storage (as media/storage/url.py has it)."""
        from veo_gateway.media.storage.url import file_root

        return self.videos_dir or file_root(self.storage_url, self.data_dir) / "videos"

    @property
    def retention_seconds(self) -> float:
        """The retention in seconds; 0 means files are kept until their task is deleted."""
        return self.retention_days * 86400.0

    @property
    def latency_range(self) -> tuple[float, float]:
        """The emulator latency as (min, max) seconds."""
        return parse_latency(self.emulator_latency)

    @property
    def gemini_keys(self) -> list[str]:
        """The Gemini API keys of the environment: GOOGLE_API_KEY's when it is set, else
        GEMINI_API_KEY's (the google-genai SDK's precedence)."""
        text = self.google_api_key or self.gemini_api_key or ""
        return [key.strip() for key in text.split(",") if key.strip()]

    @property
    def vertex_mode(self) -> bool:
        """Whether the environment asks for Vertex AI, read as the google-genai SDK reads it:
        GOOGLE_GENAI_USE_ENTERPRISE when set, else GOOGLE_GENAI_USE_VERTEXAI; `true` or `1`."""
        enterprise = _sdk_flag(self.google_genai_use_enterprise)
        vertexai = _sdk_flag(self.google_genai_use_vertexai)
        return enterprise if enterprise is not None else bool(vertexai)

    def environment_warnings(self) -> list[str]:
        """What the google-genai SDK warns about in the same environment, in its words."""
        warnings = []
        if self.google_api_key and self.gemini_api_key:
            warnings.append("Both GOOGLE_API_KEY and GEMINI_API_KEY are set. Using GOOGLE_API_KEY.")
        enterprise = _sdk_flag(self.google_genai_use_enterprise)
        vertexai = _sdk_flag(self.google_genai_use_vertexai)
        if enterprise is not None and vertexai is not None and enterprise != vertexai:
            warnings.append(
                "Both GOOGLE_GENAI_USE_ENTERPRISE and GOOGLE_GENAI_USE_VERTEXAI are set with "
                "conflicting values. The value of GOOGLE_GENAI_USE_ENTERPRISE will be used."
            )
        return warnings


def _sdk_flag(value: str | None) -> bool | None:
    """A boolean variable as the google-genai SDK reads it: unset, or true for `true`/`1`."""
    return None if value is None else value.lower() in ("true", "1")


def env_name(field: str) -> str:
    """The environment variable of the setting `field` (`GEMINI_API_KEY` keeps Google's name)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return "VEO_GATEWAY_" + field.upper()
