"""The README and docs/ name only what exists: each `python scripts/...` command shown in a bash
block names a script, subcommands and options that its (sub)command's --help lists."""
from __future__ import annotations

import re
import shlex

import pytest

from tests.scripts.test_script_help import OPTION, ROOT, help_of

PAGES = [ROOT / "README.md", ROOT / "n8n_workflows" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHONS = {"python", "python3", ".venv/bin/python"}


def commands(pages=PAGES) -> list[list[str]]:
    """[script, args...] of every line of a bash block that runs a script of scripts/ (after
    any wrapper such as `staging`), placeholders in [brackets] or <angles> left out."""
    found = []
    for page in pages:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                try:
                    words = shlex.split(re.sub(r"\[[^\]]*\]|<[^>]*>", "", line), comments=True)
                except ValueError:
                    continue
                for index, word in enumerate(words[:-1]):
                    if word in PYTHONS and words[index + 1].startswith("scripts/"):
                        found.append(words[index + 1:])
                        break
    return found


COMMANDS = commands()


def test_the_deploying_page_shows_the_scripts_a_deployment_needs():
    assert {words[0] for words in commands([ROOT / "docs" / "deploying.md"])} >= {"scripts/migrate.py", "scripts/provision.py",
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
        if word in ("|", "&&", ";", ">", "2>&1"):
            break
        if word.startswith("--"):
            name = word.split("=")[0]
            assert name in options, f"{' '.join(words[:1] + path)} has no option {name}"
            continue
        choices = re.search(r"^\s*\{([\w,-]+)\}", text, re.M)
        if choices and word in choices.group(1).split(","):
            path.append(word)
            text = help_of(script, *path)
            options |= set(OPTION.findall(text))
