"""scripts/local.py's commands that need no running system: reset deletes only a state
directory local.py made (and the cluster it placed outside it), and what an admin types (--port,
PORT, --state-dir) is refused in one line, exit 2. The system itself runs in
tests/e2e/test_local_system.py."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import local  # noqa: E402


def reset(capsys, state_dir: Path) -> tuple[int, str, str]:
    code = local.main(["reset", "--state-dir", str(state_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def made_by_local(path: Path, marker: str = "secrets.json") -> Path:
    (path / "logs").mkdir(parents=True)
    (path / marker).write_text(json.dumps({"jwtSecret": "x"}))
    return path


@pytest.fixture
def temporary_directory(tmp_path, monkeypatch) -> Path:
    """The system's temporary directory, where reset may find the cluster of a state directory."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.mark.parametrize("contents", [[], ["notes.txt"], ["logs/", "notes.txt"], ["postgres-location"]],
                         ids=["empty", "someone's files", "a logs folder", "only postgres-location"])
def test_reset_refuses_a_directory_local_py_did_not_make(capsys, tmp_path, contents):
    directory = tmp_path / "home"
    directory.mkdir()
    for name in contents:
        if name.endswith("/"):
            (directory / name).mkdir()
        else:
            (directory / name).write_text(str(tmp_path / "elsewhere"))
    code, out, err = reset(capsys, directory)
    assert code == 2
    assert err == f"[local] {directory} is not a local.py state directory (it holds no secrets.json or " \
                  "running.json): nothing removed\n"
    assert directory.is_dir() and sorted(p.name for p in directory.iterdir()) == sorted(n.rstrip("/") for n in contents)


@pytest.mark.parametrize("command", ["reset", "links", "demo"])
def test_a_state_dir_that_is_a_file_is_refused(capsys, tmp_path, command):
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    code = local.main([command, "--state-dir", str(file)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == f"[local] {file} is not a directory: --state-dir (or REXERA_STATE_DIR) names local.py's state " \
                  "directory\n"
    assert file.read_text() == "keep me"


@pytest.mark.parametrize("marker", local.STATE_MARKERS)
def test_reset_removes_a_state_directory_local_py_made(capsys, tmp_path, marker):
    directory = made_by_local(tmp_path / ".local", marker)
    code, out, _ = reset(capsys, directory)
    assert code == 0 and f"removed {directory}" in out
    assert not directory.exists()


def test_reset_removes_the_cluster_it_placed_outside_the_state_directory(capsys, tmp_path, temporary_directory):
    directory = made_by_local(tmp_path / ".local")
    cluster = local.elsewhere_cluster_directory(local.State(directory.resolve()))
    assert cluster.parent == temporary_directory
    (cluster / "base").mkdir(parents=True)
    (directory / "postgres-location").write_text(f"{cluster}\n")
    code, _, _ = reset(capsys, directory)
    assert code == 0
    assert not cluster.exists() and not directory.exists()


@pytest.mark.parametrize("where", ["elsewhere", "the home folder", "another state directory's cluster"])
def test_reset_leaves_alone_a_postgres_location_that_is_not_its_cluster(capsys, tmp_path, temporary_directory, where):
    directory = made_by_local(tmp_path / ".local")
    victim = {"elsewhere": tmp_path / "precious",
              "the home folder": tmp_path / "home",
              "another state directory's cluster":
                  local.elsewhere_cluster_directory(local.State(tmp_path / "other"))}[where]
    victim.mkdir(parents=True)
    (victim / "keep").write_text("data")
    (directory / "postgres-location").write_text(f"{victim}\n")
    code, out, _ = reset(capsys, directory)
    assert code == 0
    assert (victim / "keep").read_text() == "data"
    assert f"left {victim} alone: postgres-location names no cluster of this state directory" in out
    assert not directory.exists()


def test_reset_refuses_while_the_system_runs(capsys, tmp_path):
    import os

    directory = made_by_local(tmp_path / ".local", "running.json")
    (directory / "running.json").write_text(json.dumps({"pid": os.getpid()}))
    code, _, err = reset(capsys, directory)
    assert code == 2 and "the system is running" in err
    assert directory.exists()


@pytest.mark.parametrize("port", ["abc", "0", "70000", "-1", ""])
def test_a_port_that_is_not_one_is_named_in_one_line(capsys, monkeypatch, tmp_path, port):
    monkeypatch.setenv("PORT", port)
    with pytest.raises(SystemExit) as exited:
        local.main(["reset", "--state-dir", str(tmp_path / "none")])
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    assert err.splitlines()[-1] == f"local.py: error: argument --port: {port!r} is not a port (1-65535); " \
                                   "check --port or PORT"
    monkeypatch.delenv("PORT")
    with pytest.raises(SystemExit) as exited:
        local.main(["--port", port or "x", "reset", "--state-dir", str(tmp_path / "none")])
    assert exited.value.code == 2 and "is not a port" in capsys.readouterr().err


def test_help_works_with_a_bad_port_and_names_rexera_state_dir(capsys, monkeypatch):
    monkeypatch.setenv("PORT", "abc")
    with pytest.raises(SystemExit) as exited:
        local.main(["--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "$REXERA_STATE_DIR" in " ".join(out.split()) and "$PORT" in out
