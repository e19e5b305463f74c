"""Shared fixtures: the real commands, the sandbox VPS, the git remote.

Tests run ``inv`` and ``fab`` from the project's virtualenv as a user
would. Tests that need a server take the ``sandbox`` fixture, which runs
``inv sandbox.up`` once per session (it reuses whatever already runs).
Figures worth reading (request counts, command counts) are collected with
``figures`` and printed at the end of the run.
"""
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
_FIGURES = []


def run(tool, *args, env=None, timeout=900):
    """Run .venv/bin/TOOL ARGS from the project root; never raises on failure."""
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def one_line(result):
    """The error line a failed task printed: its last line on stderr."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox VPS, up; its facts as `inv sandbox.status --json` gives them."""
    up = run("inv", "sandbox.up", timeout=1800)
    assert up.returncode == 0, up.stdout + up.stderr
    status = run("inv", "sandbox.status", "--json")
    assert status.returncode == 0, status.stderr
    facts = json.loads(status.stdout)
    assert facts["ssh"]["up"] and facts["docker_up"], facts
    return facts


@pytest.fixture(scope="session")
def docker_env(sandbox):
    return {**os.environ, "DOCKER_HOST": sandbox["docker_host"]}


class GitRemote:
    """The sandbox's helios remote, as a developer pushing to it sees it."""

    def __init__(self, url):
        self.url = url

    def _git(self, work, *args):
        return subprocess.run(["git", "-C", work, "-c", "user.name=Test", "-c",
                               "user.email=test@aether.invalid", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    def head(self, branch="main"):
        out = subprocess.run(["git", "--git-dir", self.url, "rev-parse", branch],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def push(self, branch, files, message, base="main"):
        """Commit ``files`` ({path: text}) on top of BASE and push it as BRANCH."""
        with tempfile.TemporaryDirectory() as work:
            subprocess.run(["git", "clone", "-q", "-b", base, self.url, work], check=True)
            for path, text in files.items():
                (Path(work) / path).write_text(text)
            self._git(work, "add", "-A")
            self._git(work, "commit", "-q", "--allow-empty", "-m", message)
            self._git(work, "push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}")
            return self._git(work, "rev-parse", "HEAD")

    def read(self, path, ref="main"):
        out = subprocess.run(["git", "--git-dir", self.url, "show", f"{ref}:{path}"],
                             check=True, capture_output=True, text=True)
        return out.stdout


@pytest.fixture(scope="session")
def helios_remote(sandbox):
    return GitRemote(sandbox["git"]["helios"])


@pytest.fixture(scope="session")
def figures():
    """Call figures(text) to have a measured figure printed after the run."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
