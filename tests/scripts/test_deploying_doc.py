"""docs/deploying.md names only what exists: each `python scripts/...` command's script, its
subcommands, and every option, as that (sub)command's --help lists them."""
from __future__ import annotations

import re
import shlex

import pytest

from tests.scripts.test_script_help import OPTION, ROOT, help_of

PAGE = ROOT / "docs" / "deploying.md"


def commands() -> list[list[str]]:
    found = []
    for block in re.findall(r"```bash\n(.*?)```", PAGE.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["python"] and words[1:2] and words[1].startswith("scripts/"):
                found.append(words[1:])
    return found


COMMANDS = commands()


def test_the_page_shows_the_scripts_a_deployment_needs():
    assert {words[0] for words in COMMANDS} >= {"scripts/migrate.py", "scripts/provision.py",
                                                "scripts/sync_workflows.py", "scripts/preflight.py"}


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: " ".join(words)[:80])
def test_each_command_names_an_existing_script_subcommand_and_options(words):
    script = ROOT / words[0]
    assert script.exists(), words[0]
    # Subcommands are the leading bare words after any global options and their values.
    text = help_of(script)
    options = set(OPTION.findall(text))
    path: list[str] = []
    for word in words[1:]:
        if word.startswith("--"):
            name = word.split("=")[0]
            assert name in options, f"{' '.join(words[:1] + path)} has no option {name}"
            continue
        choices = re.search(r"^\s*\{([\w,-]+)\}", text, re.M)
        if choices and word in choices.group(1).split(","):
            path.append(word)
            text = help_of(script, *path)
            options |= set(OPTION.findall(text))
