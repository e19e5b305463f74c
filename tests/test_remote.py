"""Remote steps: one pinned SSH connection, quoted arguments, dry runs."""
import subprocess

import pytest
import yaml

from aether import inventory
from aether.errors import AetherError
from aether.remote import Remote, command, quote
from conftest import ROOT, one_line, run


class TestQuoting:
    @pytest.mark.parametrize("word", ["main", "$(touch /tmp/x)", "a b", "it's", "`id`", "x;y", ""])
    def test_every_word_reaches_bash_as_itself(self, word):
        out = subprocess.run(["bash", "-c", "printf '%s' " + quote(word)],
                             capture_output=True, text=True).stdout
        assert out == word

    def test_command_quotes_each_argument(self):
        assert command("git", "fetch", "a b") == "git fetch 'a b'"


def host_with(tmp_path, known_hosts_text):
    """The sandbox's SSH server as a plain host with its own known_hosts."""
    sandbox = inventory.load().host("sandbox")
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_text)
    data = yaml.safe_load((ROOT / "hosts.yml").read_text())
    data["hosts"]["pinned"] = {
        "address": sandbox.address, "port": sandbox.port, "user": sandbox.user,
        "identity": sandbox.identity, "known_hosts": str(known),
        "environments": ["prod"], "apps": ["helios"], "nginx": {"http_port": 8081},
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class TestHostKeysArePinned:
    def test_a_host_missing_from_known_hosts_is_refused(self, sandbox, tmp_path):
        path = host_with(tmp_path, "")
        result = run("fab", "-H", "pinned", "helios.status", env={"AETHER_INVENTORY": str(path)})
        assert result.returncode == 1
        assert one_line(result) == (f"error: pinned: root@127.0.0.1:2222 is not in "
                                    f"{tmp_path / 'known_hosts'}; pin its host key first")

    def test_a_host_presenting_another_key_is_refused(self, sandbox, tmp_path):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                       check=True)
        other = (tmp_path / "k.pub").read_text().split()
        path = host_with(tmp_path, f"[127.0.0.1]:2222 {other[0]} {other[1]}\n")
        result = run("fab", "-H", "pinned", "helios.status", env={"AETHER_INVENTORY": str(path)})
        assert result.returncode == 1
        assert "does not match" in one_line(result)
        assert "do not deploy until you know why" in one_line(result)

    def test_the_pinned_key_lets_one_connection_run_many_steps(self, sandbox):
        host = inventory.load().host("sandbox")
        with Remote(host) as remote:
            outs = [remote.run(f"echo {n}", changes=False).stdout.strip() for n in range(5)]
        assert outs == ["0", "1", "2", "3", "4"]
        assert (remote.connections, remote.commands) == (1, 5)


class TestFailuresAndDryRuns:
    def test_a_failed_step_raises_with_its_last_lines(self, sandbox):
        host = inventory.load().host("sandbox")
        with Remote(host) as remote, pytest.raises(AetherError) as caught:
            remote.run("echo first; echo why >&2; exit 3", failure="the step broke")
        assert str(caught.value) == "the step broke"
        assert "why" in caught.value.detail

    def test_a_dry_remote_shows_changing_steps_and_runs_read_only_ones(self, sandbox, tmp_path):
        host = inventory.load().host("sandbox")
        marker = tmp_path / "touched"
        shown = []
        with Remote(host, dry=True, echo=shown.append) as remote:
            remote.run(f"touch {quote(marker)}", summary="touch a file")
            read = remote.run("echo read-only", changes=False).stdout.strip()
        assert shown == ["touch a file"] and read == "read-only"
        assert not marker.exists()


class TestKnownHostsMarkers:
    def test_cert_authority_lines_are_skipped_and_the_pinned_key_still_works(self, sandbox,
                                                                           tmp_path):
        real = (inventory.load().host("sandbox").known_hosts)
        text = ("@cert-authority *.example ssh-ed25519 AAAAnotbase64!!\n"
                + open(real).read())
        path = host_with(tmp_path, text)
        result = run("fab", "-H", "pinned", "helios.status", env={"AETHER_INVENTORY": str(path)})
        assert result.returncode == 0, result.stderr

    def test_a_revoked_key_is_refused(self, sandbox, tmp_path):
        real = open(inventory.load().host("sandbox").known_hosts).read()
        kind, blob = real.split()[1:3]
        path = host_with(tmp_path, real + f"@revoked * {kind} {blob}\n")
        result = run("fab", "-H", "pinned", "helios.status", env={"AETHER_INVENTORY": str(path)})
        assert result.returncode == 1
        assert "presents a key marked @revoked" in one_line(result)
