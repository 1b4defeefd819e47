"""Veo's other options, judged per upstream kind of a model's route."""

from __future__ import annotations

import pytest

from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.options import Options, check_options
from veo_gateway.domain.request import ImageSource, VideoRequest
from veo_gateway.errors import InvalidArgument

FAST = "veo-3.1-fast-generate-preview"
FAST_GA = "veo-3.1-fast-generate-001"
CATALOG = Catalog(kinds={FAST: frozenset({"gemini", "vertex"}), FAST_GA: frozenset({"vertex"})})


def check(model: str, **metadata: object) -> tuple[VideoRequest[ImageSource], Options]:
    request = VideoRequest[ImageSource](model=model, prompt="p", extra_parameters=metadata)
    return check_options(request, CATALOG[model], CATALOG)


def test_a_route_that_may_use_the_gemini_api_takes_only_what_it_takes() -> None:
    # The pool may pick either target at submission: both must take the option.
    with pytest.raises(InvalidArgument) as refused:
        check(FAST, sampleCount=2)
    message = refused.value.message
    assert "on the Gemini API (its route here)" in message and "Vertex AI and" not in message
    assert "Vertex AI makes up to 4; models served by it here: " in message and FAST_GA in message
    with pytest.raises(InvalidArgument, match="seed isn't supported by the Gemini API"):
        check(FAST, seed=1)
    request, options = check(FAST, enhancePrompt=False, sampleCount=1, fps=24)
    assert options == Options(enhance_prompt=False)
    # Keys the gateway does not judge go on untouched; a sampleCount of 1 is Google's default.
    assert request.extra_parameters == {"fps": 24, "enhancePrompt": False}


def test_vertex_takes_every_option_in_googles_spelling() -> None:
    request, options = check(
        FAST_GA, sampleCount=4.0, seed=2**32 - 1, generateAudio=False, compressionQuality="Lossless"
    )
    assert options.sample_count == 4 and not options.audio(CATALOG[FAST_GA])
    assert request.extra_parameters == {
        "sampleCount": 4,
        "seed": 2**32 - 1,
        "generateAudio": False,
        "compressionQuality": "LOSSLESS",
    }
    for metadata, param in (
        ({"sampleCount": 5}, "metadata.sampleCount"),
        ({"seed": -1}, "metadata.seed"),
        ({"generateAudio": "off"}, "metadata.generateAudio"),
        ({"resizeMode": "pad"}, "metadata.resizeMode"),  # no image to fit
        ({"compressionQuality": "high"}, "metadata.compressionQuality"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            check(FAST_GA, **metadata)
        assert refused.value.param == param
