"""scripts/workflow_shared.py: the shared JavaScript of the exports (n8n_workflows/shared/*.js),
carried by each Code node between marker lines. An edit made inside a block (in n8n's editor) is
named with where to make it instead; a change of a shared file reaches every node with --apply;
scripts/validate_workflows.py reports the same problems."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

# The scripts as loaded once for the export tests, and where the exports are.
from tests.scripts.test_workflow_exports import EXPORTS, FILES, validator  # noqa: E402
from tests.scripts.test_workflow_exports import shared_tool as tool  # noqa: E402


@pytest.fixture
def exports(tmp_path) -> Path:
    """A copy of n8n_workflows/ (exports and shared/), as a pull into a checkout leaves it."""
    directory = tmp_path / "n8n_workflows"
    shutil.copytree(EXPORTS, directory)
    return directory


def edit_node(path: Path, node_name: str, change) -> None:
    workflow = json.loads(path.read_text())
    node = next(node for node in workflow["nodes"] if node["name"] == node_name)
    node["parameters"]["jsCode"] = change(node["parameters"]["jsCode"])
    path.write_text(json.dumps(workflow, indent=2, ensure_ascii=False) + "\n")


def code_of(path: Path, node_name: str) -> str:
    return next(node for node in json.loads(path.read_text())["nodes"]
                if node["name"] == node_name)["parameters"]["jsCode"]


def carriers(directory: Path) -> int:
    return sum(1 for name in FILES for node in json.loads((directory / name).read_text())["nodes"]
               if "// <rexera:shared name=sign-callback>" in (node["parameters"].get("jsCode") or ""))


def test_the_committed_exports_carry_their_shared_files_exactly(capsys):
    assert tool.main([]) == 0
    assert tool.main(["--check"]) == 0
    assert capsys.readouterr().out == ""
    assert carriers(EXPORTS) == 64


def test_an_edit_inside_a_shared_block_is_named_with_where_to_make_it(exports, capsys):
    payoff = exports / "payoff_request.json"
    edit_node(payoff, "Fail extract_payoff_data", lambda code: code.replace("attempt: 1 }", "attempt: 2 }", 1))
    assert tool.main(["--dir", str(exports)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    found = lines[0]
    assert found.startswith(f"{payoff}: Fail extract_payoff_data: shared block sign-callback differs from "
                            "n8n_workflows/shared/sign-callback.js (line "), found
    assert "attempt: 2 }, data);` here, `" in found and "attempt: 1 }, data);` in the file" in found
    assert ("code in a shared block is edited in n8n_workflows/shared/sign-callback.js, not in the editor; make the "
            "change there if it is wanted, then run scripts/workflow_shared.py --apply") in found
    # The validator (CI) says the same.
    assert validator.main([str(payoff)]) == 1
    assert capsys.readouterr().out.strip() == found
    # --apply undoes the stray edit: the file is the committed one again.
    assert tool.main(["--apply", "--dir", str(exports)]) == 0
    assert payoff.read_bytes() == (EXPORTS / "payoff_request.json").read_bytes()


def test_an_edit_outside_the_blocks_is_kept_by_apply(exports):
    muni = exports / "muni_lien_search.json"
    edit_node(muni, "Inject a task per portal", lambda code: code.replace("title: 'Search ' + name",
                                                                           "title: 'Search the records of ' + name"))
    edited = muni.read_text()
    assert tool.main(["--dir", str(exports)]) == 0
    assert tool.main(["--apply", "--dir", str(exports)]) == 0
    assert muni.read_text() == edited
    assert validator.main([str(muni)]) == 0


def test_a_sweeping_change_is_one_edit_of_a_shared_file_then_apply(exports, capsys):
    shared = exports / "shared" / "sign-callback.js"
    before = shared.read_text()
    old, new = "if (id.length > 200)", "if (id.length > 180)"
    assert before.count(old) == 1
    shared.write_text(before.replace(old, new))
    assert tool.main(["--dir", str(exports)]) == 1
    out = capsys.readouterr().out
    assert out.count("shared block sign-callback differs") == 64
    assert "reads `if (id.length > 200) id = trigger.workflowId" in out
    assert "`if (id.length > 180) id = trigger.workflowId" in out
    assert tool.main(["--apply", "--dir", str(exports)]) == 0
    assert tool.main(["--check", "--dir", str(exports)]) == 0
    capsys.readouterr()
    for name in FILES:
        committed = json.loads((EXPORTS / name).read_text())
        applied = json.loads((exports / name).read_text())
        for was, now in zip(committed["nodes"], applied["nodes"], strict=True):
            code = was["parameters"].get("jsCode")
            if code is not None:  # the one change, in every copy, and nothing else
                was["parameters"]["jsCode"] = code.replace(old, new)
            assert now == was, now["name"]
        assert applied == committed
        # A line per changed node in the diff: one jsCode line each.
        changed = [a for a, b in zip((EXPORTS / name).read_text().splitlines(),
                                     (exports / name).read_text().splitlines(), strict=True) if a != b]
        assert len(changed) == sum(1 for node in applied["nodes"] if new in (node["parameters"].get("jsCode") or ""))
    assert validator.main(sorted(str(path) for path in exports.glob("*.json"))) == 0


def test_a_node_that_signs_without_the_blocks_is_told_how_to_add_them_and_apply_fills_them_in(exports, capsys):
    muni = exports / "muni_lien_search.json"
    node = "Start portal_access"
    body = code_of(muni, node).split("// </rexera:shared>\n")[-1]
    assert body == "return { json: signed('task.started', { taskKey: 'portal_access', agentName: 'rex' }) };\n"
    edit_node(muni, node, lambda code: body)  # a new Code node written in the editor
    assert tool.main(["--dir", str(exports)]) == 1
    out = capsys.readouterr().out
    assert (f"{muni}: {node}: calls signed() of shared block sign-callback but does not carry that block: add the "
            "lines `// <rexera:shared name=sign-callback> edit n8n_workflows/shared/sign-callback.js, not here` and "
            "`// </rexera:shared>` at the top of the code and run scripts/workflow_shared.py --apply") in out
    # The two marker pairs, empty, are enough: --apply fills them in.
    markers = "".join(f"{tool.open_line(name)}\n{tool.CLOSE}\n" for name in ("sha256-hmac", "sign-callback"))
    edit_node(muni, node, lambda code: markers + code)
    assert tool.main(["--dir", str(exports)]) == 1
    out = capsys.readouterr().out
    assert f"{muni}: {node}: shared block sha256-hmac is empty: scripts/workflow_shared.py --apply fills it in " \
           "from n8n_workflows/shared/sha256-hmac.js" in out
    assert tool.main(["--apply", "--dir", str(exports)]) == 0
    assert muni.read_bytes() == (EXPORTS / "muni_lien_search.json").read_bytes()


def test_a_node_carrying_the_callback_without_the_hashing_is_named():
    code = tool.block_text("sign-callback", (EXPORTS / "shared" / "sign-callback.js").read_text()) + "return [];\n"
    shared = tool.load_shared(EXPORTS / "shared")
    assert [problem.split(":")[0] for problem in tool.check_code(code, shared)] == [
        "calls sha256() of shared block sha256-hmac but does not carry that block"]


@pytest.mark.parametrize("code, expected", [
    ("// <rexera:shared name=sha256-hmac> x\nfunction sha256() {}\nreturn [];\n",
     "shared block sha256-hmac is not closed (its `// </rexera:shared>` line is missing)"),
    ("// <rexera:shared name=sha256-hmac>\n// <rexera:shared name=sign-callback>\n// </rexera:shared>\n",
     "shared block sign-callback opens inside shared block sha256-hmac"),
    ("return [];\n// </rexera:shared>\n", "a `// </rexera:shared>` line without an opening marker"),
    ("// <rexera:shared name=Bad Name>\n// </rexera:shared>\n", "a shared-block marker without a valid name"),
    ("// <rexera:shared name=retry-policy>\n// </rexera:shared>\nreturn [];\n",
     "carries shared block retry-policy, but n8n_workflows/shared/retry-policy.js does not exist "
     "(shared files: sha256-hmac, sign-callback)"),
])
def test_marker_problems_are_named(code, expected):
    problems = tool.check_code(code, tool.load_shared(EXPORTS / "shared"))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_code_that_defines_its_own_function_is_left_alone():
    shared = tool.load_shared(EXPORTS / "shared")
    assert tool.check_code("function signed(type) { return type; }\nreturn [{ json: signed('x') }];\n", shared) == []
    # The error handler has a `trigger` of its own and signs nothing.
    error_handler = json.loads((EXPORTS / "error_handler.json").read_text())
    assert tool.check_workflow(error_handler, shared) == []


def test_an_export_not_in_pulls_form_is_named_and_apply_rewrites_it(exports, capsys):
    payoff = exports / "payoff_request.json"
    payoff.write_text(json.dumps(json.loads(payoff.read_text()), indent=4))
    assert tool.main(["--dir", str(exports)]) == 1
    assert capsys.readouterr().out == (f"{payoff}: -: not in the form scripts/sync_workflows.py pull writes "
                                       "(scripts/workflow_shared.py --apply rewrites it so)\n")
    assert tool.main(["--apply", "--dir", str(exports)]) == 0
    assert payoff.read_bytes() == (EXPORTS / "payoff_request.json").read_bytes()


def test_a_shared_file_holding_a_marker_is_refused(exports, capsys):
    (exports / "shared" / "extra.js").write_text("// </rexera:shared>\n")
    assert tool.main(["--dir", str(exports)]) == 1
    assert "a shared file cannot hold the marker lines itself" in capsys.readouterr().err


def test_the_validator_reads_the_shared_folder_next_to_the_files_or_else_the_repositorys(exports, tmp_path, capsys):
    (exports / "shared" / "sign-callback.js").write_text("// another signing\n")
    assert validator.main([str(exports / "payoff_request.json")]) == 1
    assert "shared block sign-callback differs" in capsys.readouterr().out
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(EXPORTS / "payoff_request.json", alone / "payoff_request.json")
    assert validator.main([str(alone / "payoff_request.json")]) == 0


# ---- what an admin can point the tools at: one line each, never a traceback ----------------------
BROKEN = {  # the file's bytes -> the finding
    "a JSON list": (b"[1]", "not a JSON object"),
    "settings a string": (b'{"name": "x", "nodes": [], "connections": {}, "settings": "s"}', "settings is not an object"),
    "nodes a string": (b'{"name": "x", "nodes": "oops"}', "nodes is not a list"),
    "connections a list": (b'{"name": "x", "nodes": [], "connections": []}', "connections is not an object of objects"),
    "not UTF-8": (b'{"name": "caf\xe9"}', "cannot read JSON: 'utf-8' codec can't decode byte 0xe9"),
}


@pytest.mark.parametrize("case", BROKEN)
@pytest.mark.parametrize("mode", [[], ["--apply"]], ids=["check", "apply"])
def test_an_export_of_a_broken_structure_is_one_finding_and_left_alone(exports, capsys, case, mode):
    content, finding = BROKEN[case]
    broken = exports / "zz_broken.json"
    broken.write_bytes(content)
    assert tool.main([*mode, "--dir", str(exports)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{broken}: -: {finding}") and len(out.splitlines()) == 1, out
    assert broken.read_bytes() == content


@pytest.mark.parametrize("kind, problem", [("missing", "does not exist"), ("empty", "holds no export (*.json)"),
                                           ("file", "is not a directory")])
@pytest.mark.parametrize("mode", [[], ["--apply"]], ids=["check", "apply"])
def test_a_dir_without_exports_is_bad_usage(tmp_path, capsys, kind, problem, mode):
    directory = tmp_path / "wfa"
    if kind == "empty":
        directory.mkdir()
    elif kind == "file":
        directory.write_text("{}")
    assert tool.main([*mode, "--dir", str(directory)]) == 2
    assert capsys.readouterr().err == f"workflow_shared.py: --dir {directory} {problem}\n"


def test_a_missing_shared_file_is_named_in_the_dir_given(tmp_path, capsys):
    directory = tmp_path / "wfa"
    directory.mkdir()
    shutil.copy(EXPORTS / "payoff_request.json", directory / "payoff_request.json")
    assert tool.main(["--dir", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "but wfa/shared/sign-callback.js does not exist (shared files: none)" in out
    assert "n8n_workflows/shared/sign-callback.js does not exist" not in out


@pytest.mark.parametrize("argument, problem", [("--bogus", "unknown option --bogus"),
                                               ("{exports}", "{exports} is a directory: name its exports "
                                                             "({exports}/*.json)"),
                                               ("{exports}/nothing.json", "{exports}/nothing.json does not exist")])
def test_the_validator_refuses_what_is_not_an_export_file_as_bad_usage(exports, capsys, argument, problem):
    argument, problem = (text.replace("{exports}", str(exports)) for text in (argument, problem))
    assert validator.main([argument, str(exports / "payoff_request.json")]) == 2
    assert capsys.readouterr().err == f"validate_workflows.py: {problem} (see --help)\n"
