"""The gateway and Google's rules (as the emulator states them) agree: what the gateway accepts,
sent by its real Gemini and Vertex adapters, the emulator accepts, and the video it renders is as
long as what the gateway charges.

The emulator's rules live in `emulator.google_rules`, written apart from `domain/`; a
disagreement found here is a gateway rule that drifted from Google's (or a wrong statement of
Google's). The known ones are listed below, each asserted to still hold, so fixing one fails
here until it is struck off.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.emulator.conftest import png
from tests.support.media import assert_length
from tests.support.servers import serve_app
from veo_gateway.api.videos import _charge
from veo_gateway.config import default_config
from veo_gateway.domain.catalog import Catalog, ModelCapabilities
from veo_gateway.domain.options import Options, check_options
from veo_gateway.domain.request import Image, ReferenceImage, VideoRequest
from veo_gateway.domain.validation import validate_request
from veo_gateway.emulator import google_rules, omni
from veo_gateway.emulator.app import EmulatorConfig, create_emulator_app
from veo_gateway.errors import InvalidArgument, UpstreamError
from veo_gateway.media.probe import probe_video
from veo_gateway.providers.base import Provider
from veo_gateway.providers.gemini import GeminiProvider
from veo_gateway.providers.http import UpstreamHttp
from veo_gateway.providers.vertex import StaticToken, VertexProvider

KEY, TOKEN = "agreement-key", "agreement-token"
CATALOG = Catalog()
EMULATOR_DIR = Path(__file__).parents[2] / "src" / "veo_gateway" / "emulator"
IMAGES = [
    Image(data=png((200, 80, 40)), mime_type="image/png", field="images[0]"),
    Image(data=png((40, 160, 90)), mime_type="image/png", field="images[1]"),
]

# The built-in routes send every catalog model to the Gemini API, which serves the Veo 3.1 GA
# ids only on Vertex AI (DESIGN: "Model ids").
GEMINI_DOES_NOT_SERVE = {"veo-3.1-generate-001", "veo-3.1-fast-generate-001"}


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = EmulatorConfig(
        latency=(0.0, 0.0),
        api_keys=frozenset({KEY}),
        vertex_tokens=frozenset({TOKEN}),
        storage_dir=tmp_path_factory.mktemp("agreement"),
        fps=2,  # lengths are what is measured here, not pictures
    )
    with serve_app(create_emulator_app(config)) as url:
        yield url


def _provider(kind: str, url: str, client: UpstreamHttp) -> Provider:
    if kind == "gemini":
        return GeminiProvider(api_key=KEY, base_url=url, client=client)
    return VertexProvider(
        project="agree",
        location="us-central1",
        tokens=StaticToken(TOKEN),
        client=client,
        base_url=url,
    )


async def _submit(kind: str, url: str, request: VideoRequest[Image]) -> UpstreamError | str:
    """The operation name, or the emulator's refusal, of `request` sent by the real adapter."""
    async with UpstreamHttp(timeout=30) as client:
        try:
            return await _provider(kind, url, client).submit(request.model, request)
        except UpstreamError as refusal:
            return refusal


@st.composite
def requests(draw: st.DrawFn, valid_only: bool) -> VideoRequest[Image]:
    """Requests over the capability table: every model, mode, duration, aspect, resolution,
    with and without images; with `valid_only` off, values just past what a row allows too."""
    row = draw(st.sampled_from(list(CATALOG.values())))
    mode = draw(
        st.sampled_from(
            row.modes if valid_only else ("text", "image", "interpolation", "reference")
        )
    )
    durations = list(row.durations) + ([] if valid_only else [3, 5, 7, 10])
    aspects = list(row.aspect_ratios) + ([] if valid_only else ["1:1", "4:3"])
    resolutions = list(row.resolutions) + ([] if valid_only else ["1080p", "4k", "480p"])
    person = [None, "allow_adult"] + ([] if valid_only else ["allow_all", "dont_allow", "kids"])
    image = IMAGES[0] if mode in ("image", "interpolation") else None
    references: tuple[ReferenceImage[Image], ...] = ()
    if mode == "reference":
        count = draw(st.integers(1, max(row.max_reference_images, 1) + (0 if valid_only else 1)))
        references = tuple(ReferenceImage(IMAGES[i % 2]) for i in range(count))
    return VideoRequest(
        model=row.name,
        prompt=draw(
            st.text(
                st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                min_size=1,
                max_size=60,
            )
        ).strip()
        + " scene [emulator:fail]",
        image=image,
        last_frame=IMAGES[1] if mode == "interpolation" else None,
        reference_images=references,
        aspect_ratio=draw(st.none() | st.sampled_from(aspects)),
        duration_seconds=draw(st.none() | st.sampled_from(durations)),
        negative_prompt=draw(st.none() | st.sampled_from(["blur", "no text"])),
        person_generation=draw(st.sampled_from(person)),
        resolution=draw(st.none() | st.sampled_from(resolutions)),
    )


def _gateway_refusal(request: VideoRequest[Image]) -> InvalidArgument | None:
    try:
        validate_request(request, CATALOG[request.model])
    except InvalidArgument as refusal:
        return refusal
    return None


def _served(kind: str, model: str) -> bool:
    return model in google_rules.MODELS["gemini" if kind == "gemini" else "vertex"]


@pytest.mark.parametrize("kind", ["gemini", "vertex"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(request=requests(valid_only=True))
def test_what_the_gateway_accepts_google_accepts(
    emulator_url: str, kind: str, request: VideoRequest[Image]
) -> None:
    assume(_gateway_refusal(request) is None)  # combinations the rows exclude are for below
    if not _served(kind, request.model):
        return  # which protocol serves which model: see the routes test below
    answer = asyncio.run(_submit(kind, emulator_url, request))
    assert isinstance(answer, str), f"{kind} refused what the gateway accepts: {answer}"


# Where the gateway refuses what Google accepts: stricter on purpose, or a rule to revisit.
GATEWAY_STRICTER = {
    # Google lets Veo 2 leave people out entirely; the gateway knows allow_adult alone.
    ("veo-2.0-generate-001", "metadata.personGeneration"),
}


@pytest.mark.parametrize("kind", ["gemini", "vertex"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests(valid_only=False))
def test_what_the_gateway_refuses_google_refuses(
    emulator_url: str, kind: str, request: VideoRequest[Image]
) -> None:
    refusal = _gateway_refusal(request)
    if not _served(kind, request.model):
        return
    answer = asyncio.run(_submit(kind, emulator_url, request))
    if refusal is None:
        assert isinstance(answer, str), f"{kind} refused what the gateway accepts: {answer}"
    elif (request.model, refusal.param) not in GATEWAY_STRICTER:
        assert isinstance(answer, UpstreamError), (
            f"{kind} accepted what the gateway refuses: {refusal}"
        )
        assert (answer.code, answer.google_status) == (400, "INVALID_ARGUMENT")


OPTION_CASES: list[dict[str, Any]] = [
    {"sampleCount": 2},
    {"sampleCount": 4},
    {"sampleCount": 5},
    {"sampleCount": 0},
    {"seed": 0},
    {"seed": 2**32},
    {"generateAudio": False},
    {"generateAudio": "no"},
    {"enhancePrompt": False},
    {"enhancePrompt": 1},
    {"compressionQuality": "lossless"},
    {"compressionQuality": "best"},
    {"resizeMode": "crop"},
    {"resizeMode": "fill"},
]
# The gateway follows Google's SDK where Google's docs say more: the Gemini API documents `seed`
# for Veo 3, which the SDK refuses in that mode.
OPTIONS_STRICTER = {("gemini", "metadata.seed")}


@pytest.mark.parametrize("kind", ["gemini", "vertex"])
@pytest.mark.parametrize("model", ["veo-3.1-fast-generate-preview", "veo-2.0-generate-001"])
@pytest.mark.parametrize(
    "metadata", OPTION_CASES, ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items())
)
def test_the_options_agree_with_google_per_upstream_kind(
    emulator_url: str, kind: str, model: str, metadata: dict[str, Any]
) -> None:
    # resizeMode fits an image: the cases carry one (the gateway refuses it without).
    request = VideoRequest[Image](
        model=model, prompt="a scene [emulator:fail]", image=IMAGES[0], extra_parameters=metadata
    )
    catalog = Catalog(CATALOG.values(), {model: frozenset({kind})})
    try:
        checked, _ = check_options(request, CATALOG[model], catalog)
        refusal = None
    except InvalidArgument as refused:
        checked, refusal = request, refused
    answer = asyncio.run(_submit(kind, emulator_url, checked))
    if refusal is None:
        assert isinstance(answer, str), f"{kind} refused what the gateway accepts: {answer}"
    elif (kind, refusal.param) not in OPTIONS_STRICTER:
        assert isinstance(answer, UpstreamError), f"{kind} accepted what the gateway refuses"


def test_the_built_in_routes_send_only_models_the_gemini_api_serves() -> None:
    routed = {
        target.model for targets in default_config(["k"]).routes.values() for target in targets
    }
    # Gemini Omni's models are served by the Interactions API (emulator/omni.py).
    assert routed - set(google_rules.MODELS["gemini"]) == set(omni.MODELS)
    assert not routed & GEMINI_DOES_NOT_SERVE


def _row_cases() -> list[tuple[str, str, int | None]]:
    """Each model with its default duration, and each duration a row offers on one model."""
    cases: list[tuple[str, str, int | None]] = []
    seen: set[tuple[int, ...]] = set()
    for row in CATALOG.values():
        if row.protocol == "interactions":
            continue  # Gemini Omni: tests/providers/test_omni.py
        kind = "gemini" if _served("gemini", row.name) else "vertex"
        cases.append((kind, row.name, None))
        if row.durations not in seen:
            seen.add(row.durations)
            cases += [(kind, row.name, seconds) for seconds in row.durations if seconds != 8]
    return cases


@pytest.mark.parametrize(("kind", "model", "seconds"), _row_cases())
def test_the_video_is_as_long_as_what_the_gateway_charges(
    emulator_url: str, tmp_path: Path, kind: str, model: str, seconds: int | None
) -> None:
    request = VideoRequest[Image](model=model, prompt="a lighthouse", duration_seconds=seconds)
    row: ModelCapabilities = CATALOG[model]
    services = cast(Any, SimpleNamespace(prices=_Prices()))
    charge = _charge(services, cast(Any, request), row, Options())
    path = asyncio.run(_generate(kind, emulator_url, request, tmp_path))
    info = probe_video(path)
    # An AAC stream runs up to one frame (1024 samples, 21 ms) past the picture.
    assert_length(info, charge.seconds, tolerance=0.03)
    assert (info.audio is not None) == charge.audio


class _Prices:
    def cost(self, model: str, resolution: str, seconds: int, audio: bool = True) -> float:
        return 0.0


async def _generate(kind: str, url: str, request: VideoRequest[Image], tmp_path: Path) -> Path:
    async with UpstreamHttp(timeout=60) as client:
        provider = _provider(kind, url, client)
        name = await provider.submit(request.model, request)
        for _ in range(600):
            status = await provider.poll(name)
            if status.done:
                break
            await asyncio.sleep(0.05)
        assert status.done and status.error is None, status
        path = tmp_path / "video.mp4"
        if status.video is not None:  # Vertex without storageUri: the bytes inline
            path.write_bytes(status.video)
            return path
        assert status.video_ref is not None
        async with provider.download(status.video_ref) as chunks:
            path.write_bytes(b"".join([chunk async for chunk in chunks]))
        return path


def test_the_emulator_does_not_import_the_gateways_rules() -> None:
    imported = set()
    for path in EMULATOR_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add((path.name, node.module))
            elif isinstance(node, ast.Import):
                imported |= {(path.name, alias.name) for alias in node.names}
    assert {
        (name, module) for name, module in imported if module.startswith("veo_gateway.domain")
    } == set()


def test_the_gateway_and_google_agree_on_extension() -> None:
    from veo_gateway.domain import extension

    # Which models extend, on each protocol that serves them.
    for kind, rules in google_rules.MODELS.items():
        for name, model in rules.items():
            if name in CATALOG:
                assert CATALOG[name].extension == model.extension, (kind, name)
    # The limits each side states for the source and what an extension adds.
    assert extension.ADDED_SECONDS == google_rules.EXTENSION_ADDS
    assert extension.GEMINI_MAX_INPUT_SECONDS == google_rules.GEMINI_MAX_SOURCE
    assert extension.GEMINI_MAX_TOTAL_SECONDS == google_rules.GEMINI_MAX_EXTENDED
    assert extension.VERTEX_INPUT_SECONDS == google_rules.VERTEX_SOURCE_SECONDS
    assert extension.VERTEX_FPS == google_rules.VERTEX_SOURCE_FPS
    assert extension.DURATION_SECONDS == google_rules.LONG_DURATION
