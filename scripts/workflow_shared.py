"""Keep the shared JavaScript of the workflow exports in step with n8n_workflows/shared/*.js.

    python scripts/workflow_shared.py [--check]     # exit 1 and name every node that differs
    python scripts/workflow_shared.py --apply       # rewrite every marked block from its file
    python scripts/workflow_shared.py --dir DIR     # exports in DIR/*.json, shared code in DIR/shared/

The exports (n8n_workflows/*.json) are the source of the workflows: edit them in n8n's editor and
`scripts/sync_workflows.py pull`. Code that many Code nodes carry (SHA-256/HMAC, the signed
callback) lives once in n8n_workflows/shared/<name>.js, and each node carries a copy between
two marker lines:

    // <rexera:shared name=sign-callback> edit n8n_workflows/shared/sign-callback.js, not here
    ...the file, byte for byte...
    // </rexera:shared>

--check reports, as `file: node: problem`: a block that differs from its file (an edit made
inside it in the editor: it names the first differing line), a block whose file does not exist,
an unclosed or nested marker, a node that calls a function of a shared file without carrying
its block, and an export not in the form pull writes. --apply rewrites every block from its file
(an empty marked block gets filled) and writes the exports in pull's form; a sweeping change to
shared code is one edit of the shared file, then --apply, then push. Exit 0 when nothing is
left to report, 1 otherwise (an export that is not UTF-8 JSON of a workflow's structure is
reported and left alone), 2 bad usage: a --dir that does not exist, is not a directory or holds
no export. scripts/validate_workflows.py runs the same block checks.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / "n8n_workflows"
CODE_NODE = "n8n-nodes-base.code"
NAME = r"[a-z0-9][a-z0-9_.-]*"
OPEN = re.compile(rf"// <rexera:shared name=({NAME})>")
ANY_OPEN = re.compile(r"// <rexera:shared\b")
CLOSE = "// </rexera:shared>"
# Top-level definitions of a shared file (no indentation): functions, and constants.
FUNCTION = re.compile(r"^function\s+([A-Za-z_$][\w$]*)\s*\(", re.M)
CONSTANT = re.compile(r"^(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=", re.M)


def open_line(name: str) -> str:
    return f"// <rexera:shared name={name}> edit n8n_workflows/shared/{name}.js, not here"


def block_text(name: str, content: str) -> str:
    """What a node carries for a shared file: the markers around the file, byte for byte."""
    if not content.endswith("\n"):
        content += "\n"
    return f"{open_line(name)}\n{content}{CLOSE}\n"


def shared_path(name: str, folder: str = "n8n_workflows") -> str:
    """How messages name a shared file: the exports' folder (its name: the export's own path is on
    the same line), shared/, the file."""
    return f"{folder}/shared/{name}.js"


def load_shared(directory: Path) -> dict[str, str]:
    """{name: content} of directory/*.js (the shared code)."""
    shared = {}
    for path in sorted(directory.glob("*.js")) if directory.is_dir() else []:
        if not re.fullmatch(NAME, path.stem):
            raise ValueError(f"{path}: a shared file's name is lower case letters, digits, '-', '_' and '.'")
        content = path.read_text()
        if ANY_OPEN.search(content) or CLOSE in content:
            raise ValueError(f"{path}: a shared file cannot hold the marker lines itself")
        shared[path.stem] = content
    return shared


class Block:
    """A marked block: its shared file's name, where its opening marker line starts and where its
    closing marker line (with its newline) ends."""

    def __init__(self, name: str, start: int, end: int):
        self.name, self.start, self.end = name, start, end

    def text(self, code: str) -> str:
        return code[self.start:self.end]


def find_blocks(code: str, folder: str = "n8n_workflows") -> tuple[list[Block], list[str]]:
    """The marked blocks of a Code node's JavaScript, and the marker problems."""
    blocks: list[Block] = []
    problems: list[str] = []
    current: Block | None = None
    offset = 0
    for line in code.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if ANY_OPEN.match(bare):
            opened = OPEN.match(bare)
            if opened is None:
                problems.append(f"a shared-block marker without a valid name: {bare[:80]!r}")
            elif current is not None:
                problems.append(f"shared block {opened.group(1)} opens inside shared block {current.name} "
                                f"(its `{CLOSE}` line is missing)")
            else:
                current = Block(opened.group(1), offset, -1)
        elif bare.startswith(CLOSE):
            if current is None:
                problems.append(f"a `{CLOSE}` line without an opening marker")
            else:
                current.end = offset + len(line)
                blocks.append(current)
                current = None
        offset += len(line)
    if current is not None:
        problems.append(f"shared block {current.name} is not closed (its `{CLOSE}` line is missing): "
                        f"restore it from {shared_path(current.name, folder)} with scripts/workflow_shared.py --apply "
                        "after adding that line back")
    return blocks, problems


def _excerpt(line: str, at: int) -> str:
    start = max(0, at - 40)
    return ("..." if start else "") + line[start:at + 40].strip() + ("..." if len(line) > at + 40 else "")


def _first_difference(found: str, wanted: str) -> str:
    found_lines, wanted_lines = found.splitlines(), wanted.splitlines()
    for index, (have, want) in enumerate(zip(found_lines, wanted_lines)):
        if have != want:
            at = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
            where = "its opening marker" if index == 0 else f"line {index} of the file"
            return f"{where} reads `{_excerpt(have, at)}` here, `{_excerpt(want, at)}` in the file"
    return f"the block has {len(found_lines) - 2} line(s), the file {len(wanted_lines) - 2}"


def check_code(code: str, shared: dict[str, str], folder: str = "n8n_workflows") -> list[str]:
    """Problems of one Code node's JavaScript against the shared files (in folder/shared/)."""
    blocks, problems = find_blocks(code, folder)
    carried = set()
    for block in blocks:
        carried.add(block.name)
        if block.name not in shared:
            problems.append(f"carries shared block {block.name}, but {shared_path(block.name, folder)} does not exist "
                            f"(shared files: {', '.join(sorted(shared)) or 'none'})")
            continue
        wanted = block_text(block.name, shared[block.name])
        if block.text(code).partition("\n")[2].startswith(CLOSE):
            problems.append(f"shared block {block.name} is empty: scripts/workflow_shared.py --apply fills it in "
                            f"from {shared_path(block.name, folder)}")
        elif block.text(code) != wanted:
            problems.append(f"shared block {block.name} differs from {shared_path(block.name, folder)} "
                            f"({_first_difference(block.text(code), wanted)}): code in a shared block is edited in "
                            f"{shared_path(block.name, folder)}, not in the editor; make the change there if it is wanted, "
                            "then run scripts/workflow_shared.py --apply (it rewrites every copy, this one included)")
    for name, content in shared.items():
        if name in carried:
            continue
        for defined in FUNCTION.findall(content):
            if re.search(rf"(?<![\w$.]){re.escape(defined)}\s*\(", code) and not _defines(code, defined):
                problems.append(f"calls {defined}() of shared block {name} but does not carry that block: add the "
                                f"lines `{open_line(name)}` and `{CLOSE}` at the top of the code and run "
                                "scripts/workflow_shared.py --apply to fill them in")
                break
        else:
            for defined in CONSTANT.findall(content):
                if re.search(rf"(?<![\w$.]){re.escape(defined)}\s*[.\[]", code) and not _defines(code, defined):
                    problems.append(f"uses {defined} of shared block {name} but does not carry that block: add "
                                    f"the lines `{open_line(name)}` and `{CLOSE}` at the top of the code and run "
                                    "scripts/workflow_shared.py --apply to fill them in")
                    break
    return problems


def _defines(code: str, name: str) -> bool:
    return re.search(rf"\b(?:function|const|let|var|class)\s+{re.escape(name)}\b", code) is not None


def _code_nodes(workflow):
    for node in workflow.get("nodes") or [] if isinstance(workflow, dict) else []:
        if isinstance(node, dict) and node.get("type") == CODE_NODE:
            code = (node.get("parameters") or {}).get("jsCode") if isinstance(node.get("parameters"), dict) else None
            if isinstance(code, str):
                yield node, code


def check_workflow(workflow, shared: dict[str, str], folder: str = "n8n_workflows") -> list[tuple[str, str]]:
    """[(node name, problem)] for every Code node of one parsed export."""
    return [(str(node.get("name")), problem) for node, code in _code_nodes(workflow)
            for problem in check_code(code, shared, folder)]


def apply_code(code: str, shared: dict[str, str]) -> str:
    """The code with every block whose shared file exists rewritten from it."""
    blocks, _ = find_blocks(code)
    for block in reversed(blocks):
        if block.name in shared:
            code = code[:block.start] + block_text(block.name, shared[block.name]) + code[block.end:]
    return code


def apply_workflow(workflow: dict, shared: dict[str, str]) -> list[str]:
    """Rewrites the blocks of one parsed export in place; returns the names of the nodes changed."""
    changed = []
    for node, code in _code_nodes(workflow):
        rewritten = apply_code(code, shared)
        if rewritten != code:
            node["parameters"]["jsCode"] = rewritten
            changed.append(node["name"])
    return changed


def structure_problem(workflow) -> str | None:
    """What in an export's structure pull's form cannot be made of (app/n8n/cloud.py); None when nothing."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from app.n8n.cloud import structure_problem

    return structure_problem(workflow)


def pull_form(workflow: dict) -> str:
    """The export as scripts/sync_workflows.py pull writes it (app/n8n/cloud.py)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from app.n8n.cloud import normalize, render

    return render(normalize(workflow))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workflow_shared.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="report what differs (the default)")
    mode.add_argument("--apply", action="store_true", help="rewrite every shared block from its file")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help="the exports (*.json) and their shared/ folder (default: n8n_workflows/)")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"workflow_shared.py: --dir {args.dir} {'is not a directory' if args.dir.exists() else 'does not exist'}",
              file=sys.stderr)
        return 2
    files = sorted(args.dir.glob("*.json"))
    if not files:
        print(f"workflow_shared.py: --dir {args.dir} holds no export (*.json)", file=sys.stderr)
        return 2
    try:
        shared = load_shared(args.dir / "shared")
    except (OSError, ValueError) as error:
        print(f"workflow_shared.py: {error}", file=sys.stderr)
        return 1
    folder = args.dir.resolve().name
    findings = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            workflow = json.loads(text)
        except ValueError as error:  # UnicodeDecodeError included
            print(f"{path}: -: cannot read JSON: {error}")
            findings += 1
            continue
        problem = structure_problem(workflow)
        if problem:
            print(f"{path}: -: {problem}")
            findings += 1
            continue
        if args.apply:
            changed = apply_workflow(workflow, shared)
            rewritten = pull_form(workflow)
            if rewritten != text:
                path.write_text(rewritten)
                print(f"{path}: rewrote the shared blocks of {len(changed)} node(s)" if changed
                      else f"{path}: rewrote it in the form pull writes")
        for node, problem in check_workflow(workflow, shared, folder):
            print(f"{path}: {node}: {problem}")
            findings += 1
        if not args.apply and pull_form(workflow) != text:
            print(f"{path}: -: not in the form scripts/sync_workflows.py pull writes "
                  "(scripts/workflow_shared.py --apply rewrites it so)")
            findings += 1
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
