"""The one way Aether runs steps on a server: a Remote over one SSH link.

A Remote wraps a single Fabric ``Connection`` to an inventory host, opened
on first use and reused for every step, with the host key pinned: a host
missing from known_hosts, or presenting another key, is refused.

Each step is a bash script built by a pure builder. Arguments inside it are
quoted by the builder (``quote``), so nothing the operator types is ever
interpreted by the remote shell. With ``dry=True`` a step that changes the
server is shown and skipped; read-only steps still run so the plan shown is
the real one.
"""
import shlex
from dataclasses import dataclass
from pathlib import Path

import fabric
import paramiko
from invoke.exceptions import CommandTimedOut

from .errors import AetherError, RemoteError
from .local import last_lines


def quote(value):
    """Quote one value for the remote shell."""
    return shlex.quote(str(value))


def command(*argv):
    """Join argv into one shell command with every word quoted."""
    return " ".join(quote(word) for word in argv)


def pinned_keys(text):
    """([(host pattern, key)], [revoked keys]) from known_hosts text.

    ``@revoked`` entries are returned apart so a revoked key is refused;
    ``@cert-authority`` lines and lines that cannot be read are skipped,
    as OpenSSH does with what it cannot use, rather than stopping.
    """
    pinned, revoked = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        marker = line.split(None, 1)[0] if line.startswith("@") else None
        if marker not in (None, "@revoked"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(
                line.split(None, 1)[1] if marker else line)
        except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError, IndexError):
            continue
        if entry is None or entry.key is None:
            continue
        if marker:
            revoked.append(entry.key)
        else:
            pinned += [(name, entry.key) for name in entry.hostnames]
    return pinned, revoked


@dataclass
class Outcome:
    """What a remote step printed and how it ended."""

    stdout: str
    stderr: str
    exited: int

    @property
    def ok(self):
        return self.exited == 0


class Remote:
    """One inventory host reached over one pinned SSH connection."""

    def __init__(self, host, dry=False, echo=None):
        self.host = host
        self.dry = dry
        self.echo = echo or (lambda text: None)
        self.connections = 0
        self.commands = 0
        self._connection = None

    def _connect(self):
        host = self.host
        known_hosts = Path(host.known_hosts)
        if not known_hosts.is_file():
            raise AetherError(f"{host.name}: no known_hosts file at {known_hosts}; "
                              f"pin the host key first (ssh-keyscan -p {host.port} {host.address}, "
                              "then check its fingerprint)")
        kwargs = {"key_filename": [host.identity]} if host.identity else {}
        connection = fabric.Connection(host.address, user=host.user, port=host.port,
                                       connect_timeout=15, connect_kwargs=kwargs)
        pinned, revoked = pinned_keys(known_hosts.read_text())
        for name, key in pinned:
            connection.client.get_host_keys().add(name, key.get_name(), key)
        connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        target = f"{host.user}@{host.address}:{host.port}"
        try:
            connection.open()
        except paramiko.BadHostKeyException:
            raise AetherError(f"{host.name}: the host key of {target} does not match "
                              f"{known_hosts}; do not deploy until you know why") from None
        except paramiko.SSHException as error:
            if "not found in known_hosts" in str(error):
                raise AetherError(f"{host.name}: {target} is not in {known_hosts}; "
                                  "pin its host key first") from None
            raise AetherError(f"{host.name}: SSH to {target} failed: {error}") from None
        except OSError as error:
            raise AetherError(f"{host.name}: cannot reach {target}: "
                              f"{error.strerror or error}") from None
        presented = connection.transport.get_remote_server_key()
        if any(presented == key for key in revoked):
            connection.close()
            raise AetherError(f"{host.name}: {target} presents a key marked @revoked in "
                              f"{known_hosts}; do not deploy until you know why")
        self.connections += 1
        return connection

    @property
    def connection(self):
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def feed(self, script, data, *, timeout=60, failure=None, summary=None):
        """Run a script that reads ``data`` (text) on its standard input.

        The data travels inside the SSH channel, so it is in no command
        line and no process list, and it is never echoed: in dry mode only
        the ``summary`` (else the script) is shown. Always a step that
        changes the server.
        """
        if self.dry:
            self.echo(summary or script)
            return Outcome("", "", 0)
        self.commands += 1
        channel = self.connection.client.get_transport().open_session(timeout=15)
        try:
            channel.settimeout(timeout)
            channel.exec_command(command("bash", "-c", "set -euo pipefail\n" + script))
            channel.sendall(data.encode("utf-8"))
            channel.shutdown_write()
            stdout = channel.makefile("rb").read().decode("utf-8", "replace")
            stderr = channel.makefile_stderr("rb").read().decode("utf-8", "replace")
            outcome = Outcome(stdout, stderr, channel.recv_exit_status())
        except TimeoutError:
            raise RemoteError(failure or f"{self.host.name}: a step ran over {timeout}s") from None
        except (OSError, paramiko.SSHException) as error:
            raise RemoteError(failure or f"{self.host.name}: the SSH channel broke: {error}") from None
        finally:
            channel.close()
        if not outcome.ok:
            raise RemoteError(failure or f"{self.host.name}: a remote step failed "
                              f"(exit status {outcome.exited})",
                              last_lines(outcome.stdout + "\n" + outcome.stderr))
        return outcome

    def run(self, script, *, changes=True, timeout=None, check=True, failure=None, summary=None):
        """Run a bash script on the host and return its Outcome.

        ``changes`` marks a step that modifies the server: in dry mode it
        is shown (its one-line ``summary``, else the script), not run. A
        failed step raises RemoteError with
        ``failure`` (or a default) and the step's last output lines.
        """
        if self.dry and changes:
            self.echo(summary or script)
            return Outcome("", "", 0)
        self.commands += 1
        try:
            result = self.connection.run(
                command("bash", "-c", "set -euo pipefail\n" + script),
                hide=True, warn=True, in_stream=False, timeout=timeout)
        except CommandTimedOut:
            raise RemoteError(failure or f"{self.host.name}: a step ran over {timeout}s") from None
        outcome = Outcome(result.stdout, result.stderr, result.exited)
        if check and not outcome.ok:
            raise RemoteError(failure or f"{self.host.name}: a remote step failed "
                              f"(exit status {outcome.exited})",
                              last_lines(outcome.stdout + "\n" + outcome.stderr))
        return outcome

    def attach(self, script, tty=True):
        """Run a script wired to this terminal (psql, redis-cli); its exit status.

        Without ``tty`` (a pipe, a test) output is streamed and stdin is
        left closed, so nothing waits for input that will never come.
        """
        self.commands += 1
        result = self.connection.run(command("bash", "-c", "set -euo pipefail\n" + script),
                                     pty=tty, warn=True, hide=False,
                                     **({} if tty else {"in_stream": False}))
        return result.exited

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
