"""Every admin script explains itself: --help exits 0 and prints the script's whole description
(not its first line cut mid-sentence), and every option its description mentions exists."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path for path in (ROOT / "scripts").glob("*.py") if '__name__ == "__main__"' in path.read_text())


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")


def help_of(script: Path, *command: str) -> str:
    result = subprocess.run([sys.executable, str(script), *command, "--help"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    return result.stdout


# Options of other tools a description quotes (npm's).
OTHER_TOOLS_OPTIONS = {"n8n_local.py": {"--ignore-scripts"}}


def with_subcommands(script: Path, text: str, command: tuple[str, ...]) -> str:
    """The help text and that of every subcommand, at any depth."""
    choices = re.search(r"^\s*\{([\w,-]+)\}", text, re.M)
    found = text
    for name in (choices.group(1).split(",") if choices else []):
        child = help_of(script, *command, name)
        if child != text:  # a subcommand of its own (not a positional choice of the same parser)
            found += with_subcommands(script, child, (*command, name))
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_help_prints_the_whole_description_and_every_option_it_names(script):
    docstring = ast.get_docstring(ast.parse(script.read_text()))
    text = help_of(script)
    first_paragraph = " ".join(docstring.split("\n\n")[0].split())
    assert first_paragraph in " ".join(text.split()), text[:600]
    # The options the parser really has: its help without the description, and each subcommand's.
    parsed = with_subcommands(script, text.replace(docstring.strip(), ""), ())
    named = set(OPTION.findall(docstring)) - OTHER_TOOLS_OPTIONS.get(script.name, set())
    assert named <= set(OPTION.findall(parsed)), f"the description names options that do not exist: " \
                                                 f"{sorted(named - set(OPTION.findall(parsed)))}"


def test_mint_token_gives_the_inbound_token_the_service_accepts():
    from app.webhooks.signing import inbound_token

    secret = b"s" * 32
    workflow_id = "11111111-2222-3333-4444-555555555555"
    env = {"PATH": "/usr/bin:/bin", "N8N_CALLBACK_SECRET": "whsec_" + __import__("base64").b64encode(secret).decode()}
    done = subprocess.run([sys.executable, "scripts/mint_token.py", "--inbound-for", workflow_id], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == inbound_token(secret, workflow_id)
    missing = subprocess.run([sys.executable, "scripts/mint_token.py", "--inbound-for", workflow_id], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2 and "N8N_CALLBACK_SECRET" in missing.stderr


@pytest.mark.parametrize("script", [*SCRIPTS, ROOT / "scripts" / "demo.py"], ids=lambda path: path.name)
def test_every_script_runs_from_anywhere_without_pythonpath(script, tmp_path):
    """The checkout is found from the script's own place, not from the working directory."""
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
