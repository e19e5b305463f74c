"""inv sandbox.*: this machine as a VPS, reused on every run."""
import json
import re
from pathlib import Path

from aether import sandbox
from conftest import run


class TestSandboxUp:
    def test_a_second_up_reuses_everything(self, sandbox):
        result = run("inv", "sandbox.up")
        assert result.returncode == 0, result.stderr
        assert "reused" in result.stdout
        assert "all up to date" in result.stdout
        assert "debootstrap" not in result.stdout

    def test_status_json_gives_ssh_and_the_nginx_url(self, sandbox):
        facts = json.loads(run("inv", "sandbox.status", "--json").stdout)
        assert facts["ssh"]["address"] == "127.0.0.1" and facts["ssh"]["port"] == 2222
        assert facts["http_url"] == "http://127.0.0.1:8080"
        assert facts["ssh"]["up"] and facts["docker_up"]


class TestBuilders:
    def test_sshd_listens_on_loopback_with_keys_only(self):
        paths = sandbox.Paths(Path("/srv/sb"))
        text = sandbox.sshd_config(paths, 2222, "unix:///srv/sb/run/docker.sock")
        assert "ListenAddress 127.0.0.1" in text
        assert "PasswordAuthentication no" in text and "UsePAM no" in text
        assert "SetEnv DOCKER_HOST=unix:///srv/sb/run/docker.sock" in text

    def test_the_host_key_is_pinned_with_its_port(self):
        line = sandbox.known_hosts_line("127.0.0.1", 2222, "ssh-ed25519 AAAAC3Nz comment\n")
        assert line == "[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nz\n"

    def test_the_mirror_comes_from_apts_own_sources(self):
        deb822 = "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
        legacy = "deb http://other.invalid/debian bookworm main\n"
        assert sandbox.apt_mirror([deb822]) == "http://mirror.invalid/debian"
        assert sandbox.apt_mirror([legacy]) == "http://other.invalid/debian"
        assert sandbox.apt_mirror(["# nothing\n"]) is None

    def test_stand_in_keys_change_with_their_dockerfile(self):
        keys = {name: sandbox.stand_in_key(name) for name in sandbox.STAND_INS}
        assert all(re.fullmatch(r"[0-9a-f]{12}", key) for key in keys.values())
        assert len(set(keys.values())) == len(keys)
