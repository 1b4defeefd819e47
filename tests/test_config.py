"""The operator config file: what it accepts, and what it refuses with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from veo_gateway.config import ConfigError, Target, load_config

EXAMPLE = """
[[upstreams]]
name = "gemini"
kind = "gemini"
api_keys = ["k1", "k2"]
rpm = 5

[[upstreams]]
name = "vertex"
kind = "vertex"
project = "p"
location = "europe-west4"
storage_uri = "gs://b/veo/"
max_in_flight = 3

[[routes]]
model = "veo-3.1-generate-preview"
targets = [{ upstream = "vertex", model = "veo-3.1-generate-001" }, { upstream = "gemini" }]

[[routes]]
model = "veo-3.1-fast-generate-preview"
targets = [{ upstream = "gemini" }]

[models."veo-3.1-generate-preview"]
typical_latency = 80
durations = [8]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "veo.toml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))
    gemini, vertex = config.upstreams
    assert gemini.api_keys == ("k1", "k2") and gemini.rpm == 5
    assert vertex.location == "europe-west4" and vertex.max_in_flight == 3
    assert config.routes["veo-3.1-generate-preview"] == (
        Target("vertex", "veo-3.1-generate-001"),
        Target("gemini", "veo-3.1-generate-preview"),
    )
    # Only routed models are served; overrides change the built-in row.
    served = {row.name: row for row in config.models}
    assert set(served) == {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview"}
    assert served["veo-3.1-generate-preview"].durations == (8,)
    assert served["veo-3.1-generate-preview"].typical_latency == 80


def test_without_routes_every_model_goes_to_every_upstream_that_knows_it(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[[upstreams]]\nname = "g"\nkind = "gemini"\napi_keys = ["k"]\n')
    )
    assert config.routes["veo-2.0-generate-001"] == (Target("g", "veo-2.0-generate-001"),)
    # Vertex's GA ids are unknown to the Gemini API: served only where a vertex upstream is.
    assert "veo-3.1-generate-001" not in config.routes
    assert len(config.models) == 8  # Veo on the Gemini API, and Gemini Omni
    both = load_config(
        write(
            tmp_path,
            '[[upstreams]]\nname = "g"\nkind = "gemini"\napi_keys = ["k"]\n'
            '[[upstreams]]\nname = "v"\nkind = "vertex"\nproject = "p"\n'
            'access_token = "t"\n',
        )
    )
    assert both.routes["veo-3.1-generate-001"] == (Target("v", "veo-3.1-generate-001"),)
    assert both.routes["veo-2.0-generate-001"] == (
        Target("g", "veo-2.0-generate-001"),
        Target("v", "veo-2.0-generate-001"),
    )
    assert len(both.models) == 10  # every Veo row, and Gemini Omni's two


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no [[upstreams]]"),
        ("[[upstreams]]\nname='a'\nkind='openai'\n", "kind must be"),
        ("[[upstreams]]\nname='a'\nkind='gemini'\n", "needs api_keys"),
        ("[[upstreams]]\nname='a'\nkind='vertex'\n", "needs project"),
        ("[[upstreams]]\nname='a'\nkind='gemini'\napi_keys=['k']\ncolour='red'\n", "colour"),
        ("[[upstreams]]\nname='a'\nkind='gemini'\napi_keys=['k']\nrpm=0\n", "at least 1"),
        (
            "[[upstreams]]\nname='a'\nkind='gemini'\napi_keys=['k']\n[[routes]]\nmodel='m'\n"
            "targets=[{upstream='b'}]\n",
            "no upstream named 'b'",
        ),
        (
            "[[upstreams]]\nname='a'\nkind='gemini'\napi_keys=['k']\n"
            "[models.veo-2.0-generate-001]\nwings=2\n",
            "unknown capability",
        ),
        (
            "[[upstreams]]\nname='a'\nkind='gemini'\napi_keys=['k']\n[[routes]]\nmodel='veo-x'\n"
            "targets=[{upstream='a'}]\n",
            "no capability row",
        ),
        ("not toml [", "cannot read"),
        ("[[upstreams]]\nname='e'\nkind='emulator'\nfaults='poll.418=0.1'\n", "unknown emulator"),
        ("[[upstreams]]\nname='e'\nkind='emulator'\nlatency='9-1'\n", "latency must be"),
        (
            "[[upstreams]]\nname='a'\nkind='gemini'\napi_keys=['k']\nfaults='poll.500=0.1'\n",
            "for kind = 'emulator' only",
        ),
    ],
)
def test_mistakes_are_refused_clearly(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[")):
        load_config(write(tmp_path, text))


def test_a_new_model_can_be_declared(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "[[upstreams]]\nname='a'\nkind='gemini'\napi_keys=['k']\n"
            "[models.veo-4-preview]\ndurations=[4, 8]\n"
            "[[routes]]\nmodel='veo-4-preview'\n"
            "targets=[{upstream='a'}]\n",
        )
    )
    assert [row.name for row in config.models] == ["veo-4-preview"]
    assert config.models[0].durations == (4, 8)


def test_a_bad_setting_stops_the_command_with_a_message(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "VEO_GATEWAY_EMULATOR_FAULTS": "poll.418=0.5"}
    result = subprocess.run(
        [sys.executable, "-m", "veo_gateway", "emulator"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr and "poll.418" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_secret_setting_is_named_without_its_value(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "VEO_GATEWAY_ADMIN_TOKEN": "tooshort-s3cr3t"}
    result = subprocess.run(
        [sys.executable, "-m", "veo_gateway", "keys", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "VEO_GATEWAY_ADMIN_TOKEN: String should have at least 16 characters" in result.stderr
    assert "tooshort-s3cr3t" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://bucket/prefix", "the scheme must be file://, s3:// or gs://"),
        ("s3://", "name the bucket, s3://BUCKET/PREFIX"),
        ("gs:///prefix", "name the bucket, gs://BUCKET/PREFIX"),
        ("file://relative/path", "a file URL names an absolute path"),
        ("s3://bucket/prefix?region=eu", "come from the environment"),
        ("s3://AKIA:s3cr3t@bucket/prefix", "come from the environment"),
    ],
)
def test_a_bad_storage_url_is_refused_clearly(url: str, words: str) -> None:
    from pydantic import ValidationError

    from veo_gateway.settings import Settings

    with pytest.raises(ValidationError, match=words) as refused:
        Settings(storage_url=url)
    # What the command prints (the message, never the value: see the test above).
    assert "s3cr3t" not in " ".join(error["msg"] for error in refused.value.errors())


def test_storage_urls_that_are_taken() -> None:
    from veo_gateway.settings import Settings

    for url in ("file:///srv/veo", "s3://bucket", "s3://bucket/some/prefix", "gs://bucket/p"):
        assert Settings(storage_url=url).storage_url == url
    assert Settings(storage_url="file:///srv/veo").resolved_videos_dir == Path("/srv/veo/videos")
