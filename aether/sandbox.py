"""Builders for the sandbox: this machine dressed up as a throwaway VPS.

The sandbox is what the tests and the README's demo deploy to. It is a real
OpenSSH server on 127.0.0.1 (keys generated, host key pinned), a real Docker
Engine (the machine's own, or Debian's dockerd started on a private socket),
the Compose v2 plugin, and stand-in images: production images cannot be
pulled here, so the names the compose files use (``node:22-alpine``,
``nginx:1.27-alpine``, ``postgres:18`` ...) are built locally from one
Debian rootfs and honour the parts of the official images Aether relies on.

Everything here returns text or argv lists; ``aether.tasks.sandbox`` runs it.
"""
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
IMAGES = PROJECT / "sandbox" / "images"

# Debian packages baked into the one rootfs every stand-in image starts from.
ROOTFS_PACKAGES = (
    "ca-certificates", "curl", "procps", "tini", "git", "openssl",
    "nginx-light", "nodejs",
    "python3", "python3-django", "gunicorn", "python3-celery",
    "python3-redis", "python3-psycopg2",
    "redis-server", "postgresql-15",
)

# Stand-in image name -> folder under sandbox/images holding its Dockerfile.
STAND_INS = {
    "nginx:1.27-alpine": "nginx",
    "node:22-alpine": "node",
    "postgres:18": "postgres",
    "redis:7-alpine": "redis",
    "python:3.13-slim": "python",
}


@dataclass(frozen=True)
class Paths:
    """Where the sandbox keeps its state; one folder, kept across runs."""

    root: Path

    @classmethod
    def from_environment(cls):
        return cls(Path(os.environ.get("AETHER_SANDBOX_DIR", "/var/lib/aether-sandbox")))

    def __getattr__(self, name):
        layout = {
            "ssh": "ssh", "host_key": "ssh/ssh_host_ed25519_key",
            "client_key": "ssh/id_ed25519", "authorized_keys": "ssh/authorized_keys",
            "known_hosts": "ssh/known_hosts", "sshd_config": "ssh/sshd_config",
            "sshd_pid": "run/sshd.pid", "sshd_log": "run/sshd.log",
            "run": "run", "docker_data": "docker", "docker_exec": "run/docker",
            "docker_pid": "run/dockerd.pid", "docker_log": "run/dockerd.log",
            "docker_socket": "run/docker.sock", "git": "git",
            "server_root": "srv", "cache": "cache",
        }
        if name not in layout:
            raise AttributeError(name)
        return self.root / layout[name]


def sshd_config(paths, port, docker_host):
    """An sshd_config for a loopback-only, key-only server.

    ``SetEnv`` hands every session the sandbox's Docker socket, so remote
    steps call plain ``docker`` exactly as they would on the VPS.
    """
    return "\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {paths.host_key}",
        f"AuthorizedKeysFile {paths.authorized_keys}",
        f"PidFile {paths.sshd_pid}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "PrintMotd no",
        "MaxStartups 50:30:100",
        f"SetEnv DOCKER_HOST={docker_host}",
        "Subsystem sftp internal-sftp",
        "",
    ])


def known_hosts_line(address, port, public_key):
    """The known_hosts entry pinning the sandbox's host key."""
    name = address if port == 22 else f"[{address}]:{port}"
    kind, blob = public_key.split()[:2]
    return f"{name} {kind} {blob}\n"


def dockerd_argv(paths):
    """Debian's dockerd on a private socket, state kept under the sandbox."""
    return [
        "dockerd",
        f"--data-root={paths.docker_data}",
        f"--exec-root={paths.docker_exec}",
        f"--pidfile={paths.docker_pid}",
        f"--host=unix://{paths.docker_socket}",
    ]


def apt_mirror(sources_texts):
    """The Debian mirror this machine's apt already uses, for debootstrap.

    Reads deb822 ``URIs:`` lines and one-line ``deb URL SUITE`` entries and
    returns the first mirror serving bookworm's main archive.
    """
    for text in sources_texts:
        for block in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == "bookworm":
                return parts[1]
    return None


def rootfs_key():
    """A short hash naming the rootfs build: it changes with the package list."""
    return hashlib.sha256(" ".join(ROOTFS_PACKAGES).encode()).hexdigest()[:12]


def debootstrap_argv(target, mirror):
    return ["debootstrap", "--variant=minbase",
            "--include=" + ",".join(ROOTFS_PACKAGES),
            "bookworm", str(target), mirror]


def import_argv(tag):
    """docker import of the rootfs tarball read from standard input."""
    return ["docker", "import", "--change", 'CMD ["bash"]', "-", tag]


def stand_in_key(name):
    """Hash of a stand-in's build inputs, so a changed Dockerfile rebuilds it."""
    folder = IMAGES / STAND_INS[name]
    digest = hashlib.sha256(rootfs_key().encode())
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def stand_in_build_argv(name, base):
    return ["docker", "build", "--quiet", "--build-arg", f"BASE={base}",
            "--label", "aether.stand-in=1",
            "--label", f"aether.stand-in.key={stand_in_key(name)}",
            "-t", name, str(IMAGES / STAND_INS[name])]
