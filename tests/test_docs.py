"""The README documents every setting (name and default), and starts with the Quick start."""

from __future__ import annotations

import re
from pathlib import Path

from veo_gateway.settings import Settings, env_name

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = []
    for name, field in Settings.model_fields.items():
        env = env_name(name)
        if f"`{env}`" not in README:
            missing.append(env)
        assert field.description, f"setting {name} has no description"
    assert not missing, f"settings missing from README.md: {missing}"


def test_quick_start_has_exactly_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks[:2]) == 2
    assert "veo-gateway serve" in blocks[0] and "pytest" in blocks[1]


DOCS = {
    path.name: path.read_text(encoding="utf-8")
    for path in [
        Path(__file__).resolve().parents[1] / "README.md",
        *sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md")),
    ]
}
# curl's data options; a body starting with `{` is JSON.
JSON_DATA = re.compile(r"(?:^|\s)(?:-d|--data|--data-raw|--data-binary)\s*(?:'|\")?\{")
JSON_TYPE = re.compile(r"""-H\s*['"]Content-Type:\s*application/json['"]""", re.I)


def shell_commands(text: str) -> list[str]:
    """Every command line of the text's code blocks, continuation lines joined."""
    commands: list[str] = []
    for block in re.findall(r"```[\w-]*\n(.*?)```", text, re.S):
        commands.extend(line.strip() for line in block.replace("\\\n", " ").splitlines())
    return commands


def json_curls_without_a_json_type(text: str) -> list[str]:
    """curl commands that send a JSON body without saying it is JSON (curl then sends it as
    `application/x-www-form-urlencoded`, which the API does not read as JSON)."""
    return [
        command
        for command in shell_commands(text)
        if "curl " in command and JSON_DATA.search(command) and not JSON_TYPE.search(command)
    ]


def test_the_check_of_curl_commands_can_fail() -> None:
    bad = (
        "```sh\ncurl -s localhost:8000/v1/videos -H 'Authorization: Bearer K' \\\n"
        "  -d '{\"a\": 1}'\n```"
    )
    good = bad.replace("-d '", "-H 'Content-Type: application/json' -d '")
    assert json_curls_without_a_json_type(bad) != []
    assert json_curls_without_a_json_type(good) == []


def test_every_curl_that_sends_json_says_so() -> None:
    assert "curl " in "\n".join(shell_commands(README))  # the check has commands to look at
    for name, text in DOCS.items():
        missing = json_curls_without_a_json_type(text)
        assert missing == [], f"{name}: add -H 'Content-Type: application/json' to {missing}"
