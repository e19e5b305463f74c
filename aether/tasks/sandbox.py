"""sandbox.*: make this machine a throwaway VPS the real tasks deploy to."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from invoke import Collection

from .. import inventory, local
from .. import sandbox as build
from ..cli import local_task
from ..console import Steps, console
from ..errors import AetherError
from .secrets import push_all as push_env_files

DEFAULT_SOCKET = "/var/run/docker.sock"


def _sandbox_host():
    hosts = [h for h in inventory.load().hosts.values() if h.sandbox]
    if not hosts:
        raise AetherError("hosts.yml has no host with 'sandbox: true': add one (see hosts.yml)")
    return hosts[0]


def _alive(pidfile):
    try:
        pid = int(Path(pidfile).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _port_open(address, port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0


def _docker_env(docker_host):
    return {**os.environ, "DOCKER_HOST": docker_host}


def _engine_answers(docker_host):
    done = local.run(["docker", "version", "--format", "{{.Server.Version}}"],
                     check=False, env=_docker_env(docker_host), timeout=20)
    return done.stdout.strip() if done.returncode == 0 else None


def _ensure_keys(paths):
    paths.ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
    for key in (paths.host_key, paths.client_key):
        if not key.exists():
            local.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aether-sandbox",
                       "-f", str(key)])
    paths.authorized_keys.write_text(Path(f"{paths.client_key}.pub").read_text())
    os.chmod(paths.authorized_keys, 0o600)


def _ensure_docker(paths):
    """Use an engine that already answers, else start Debian's dockerd."""
    for candidate in (os.environ.get("AETHER_SANDBOX_DOCKER_HOST"),
                      f"unix://{paths.docker_socket}", f"unix://{DEFAULT_SOCKET}"):
        if candidate and _engine_answers(candidate):
            return candidate, "reused"
    paths.run.mkdir(parents=True, exist_ok=True)
    with open(paths.docker_log, "ab") as log:
        subprocess.Popen(build.dockerd_argv(paths), stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    docker_host = f"unix://{paths.docker_socket}"
    for _ in range(120):
        if _engine_answers(docker_host):
            return docker_host, "started"
        time.sleep(0.5)
    raise AetherError(f"dockerd did not answer within 60s: read {paths.docker_log}")


def _ensure_sshd(paths, host, docker_host):
    config = build.sshd_config(paths, host.port, docker_host)
    current = paths.sshd_config.read_text() if paths.sshd_config.exists() else ""
    pid = _alive(paths.sshd_pid)
    if pid and current == config and _port_open(host.address, host.port):
        return "reused"
    if pid:
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.5)
    paths.sshd_config.write_text(config)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    local.run(["/usr/sbin/sshd", "-t", "-f", str(paths.sshd_config)])
    local.run(["/usr/sbin/sshd", "-f", str(paths.sshd_config), "-E", str(paths.sshd_log)])
    for _ in range(40):
        if _port_open(host.address, host.port):
            break
        time.sleep(0.25)
    else:
        raise AetherError(f"sshd did not listen on {host.address}:{host.port}: read {paths.sshd_log}")
    public = Path(f"{paths.host_key}.pub").read_text()
    paths.known_hosts.write_text(build.known_hosts_line(host.address, host.port, public))
    return "started"


def _image_label(name, docker_host, label):
    done = local.run(["docker", "image", "inspect", "--format",
                      "{{ index .Config.Labels \"%s\" }}" % label, name],
                     check=False, env=_docker_env(docker_host))
    return done.stdout.strip() if done.returncode == 0 else None


def _ensure_rootfs(paths, docker_host):
    """Import the stand-ins' Debian rootfs, building it with debootstrap once."""
    tag = f"aether-sandbox/rootfs:{build.rootfs_key()}"
    env = _docker_env(docker_host)
    if local.run(["docker", "image", "inspect", tag], check=False, env=env).returncode == 0:
        return tag, "cached image"
    paths.cache.mkdir(parents=True, exist_ok=True)
    tarball = paths.cache / f"rootfs-{build.rootfs_key()}.tar"
    how = "cached tarball"
    if not tarball.exists():
        sources = [p.read_text() for p in Path("/etc/apt").glob("sources.list*") if p.is_file()]
        sources += [p.read_text() for p in Path("/etc/apt/sources.list.d").glob("*") if p.is_file()]
        mirror = build.apt_mirror(sources)
        if not mirror:
            raise AetherError("no bookworm mirror in /etc/apt/sources.list*: configure apt first")
        with tempfile.TemporaryDirectory(dir=paths.cache) as target:
            try:
                local.run(build.debootstrap_argv(target, mirror), timeout=1200)
            finally:
                subprocess.run(["umount", "-l", f"{target}/proc"], capture_output=True)
            partial = tarball.with_suffix(".partial")
            local.run(["tar", "-C", target, "--exclude=./proc", "--exclude=./sys",
                       "--exclude=./dev", "-cf", str(partial), "."])
            partial.rename(tarball)
        how = "built with debootstrap"
    with open(tarball, "rb") as stream:
        done = subprocess.run(build.import_argv(tag), stdin=stream, env=env,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise AetherError(f"docker import failed: {local.last_lines(done.stderr, 3)}")
    return tag, how


def _ensure_stand_ins(base, docker_host):
    built = []
    for name in build.STAND_INS:
        if _image_label(name, docker_host, "aether.stand-in.key") == build.stand_in_key(name):
            continue
        local.run(build.stand_in_build_argv(name, base), timeout=600,
                  env={**_docker_env(docker_host), "DOCKER_BUILDKIT": "0"})
        built.append(name)
    return built


def _ensure_git_remote(paths, app, example):
    """A bare repository whose main branch holds the stand-in app.

    Created on first use; later runs commit the example folder again only
    when it changed, so the sandbox always deploys the current stand-in.
    """
    bare = paths.git / f"{app}.git"
    created = not (bare / "HEAD").exists()
    if created:
        local.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)])
    with tempfile.TemporaryDirectory() as work:
        git = ["git", "-C", work, "-c", "user.name=Aether sandbox",
               "-c", "user.email=sandbox@aether.invalid"]
        local.run(["git", "clone", "-q", str(bare), work])
        local.run(git[:3] + ["checkout", "-q", "-B", "main"])
        local.run(["find", work, "-mindepth", "1", "-maxdepth", "1", "!", "-name", ".git",
                   "-exec", "rm", "-rf", "{}", "+"])
        local.run(["cp", "-a", f"{example}/.", work])
        local.run(git + ["add", "-A"])
        if not local.run(git + ["status", "--porcelain"]).stdout.strip():
            return "up to date"
        local.run(git + ["commit", "-q", "-m", f"{app} stand-in from examples/{app}"])
        local.run(git + ["push", "-q", "origin", "main"])
    return "created" if created else "updated from examples/"


@local_task
def up(c):
    """Start the sandbox VPS: sshd, Docker Engine, stand-in images.

    Safe to run again: what already runs is reused, images are rebuilt
    only when their inputs change, the debootstrap rootfs is cached.
    """
    host = _sandbox_host()
    paths = build.Paths.from_environment()
    steps = Steps("sandbox")
    with steps.step("SSH keys") as note:
        _ensure_keys(paths)
        note["result"] = str(paths.ssh)
    with steps.step("Docker Engine") as note:
        docker_host, how = _ensure_docker(paths)
        note["result"] = f"{how} at {docker_host}"
    with steps.step("Compose v2 plugin") as note:
        done = local.run(["docker", "compose", "version", "--short"], check=False)
        if done.returncode != 0:
            raise AetherError("the docker compose plugin is missing: run scripts/bootstrap")
        note["result"] = done.stdout.strip()
    with steps.step(f"OpenSSH server on {host.address}:{host.port}") as note:
        note["result"] = _ensure_sshd(paths, host, docker_host) + ", host key pinned"
    with steps.step("stand-in base rootfs") as note:
        base, how = _ensure_rootfs(paths, docker_host)
        note["result"] = f"{base} ({how})"
    with steps.step("stand-in images") as note:
        built = _ensure_stand_ins(base, docker_host)
        note["result"] = ("built " + ", ".join(built)) if built else "all up to date"
    with steps.step("git remotes") as note:
        results = [f"{app} {_ensure_git_remote(paths, app, build.PROJECT / 'examples' / app)}"
                   for app in ("helios", "aletheia") if (build.PROJECT / "examples" / app).is_dir()]
        note["result"] = ", ".join(results)
    with steps.step("env files") as note:
        note["result"] = push_env_files(host)
    steps.summary("sandbox up")


def _facts():
    host = _sandbox_host()
    paths = build.Paths.from_environment()
    sshd = _alive(paths.sshd_pid)
    docker_hosts = [f"unix://{paths.docker_socket}", f"unix://{DEFAULT_SOCKET}"]
    docker_host = next((d for d in docker_hosts if _engine_answers(d)), None)
    return {
        "ssh": {"address": host.address, "port": host.port, "user": host.user,
                "identity": host.identity, "known_hosts": host.known_hosts,
                "up": bool(sshd and _port_open(host.address, host.port))},
        "docker_host": docker_host,
        "docker_up": docker_host is not None,
        "http_url": f"http://{host.nginx.bind}:{host.nginx.http_port}",
        "server_root": host.root,
        "git": {app: url for app, url in host.repos.items()},
        "state_dir": str(paths.root),
    }


@local_task(help={"json": "print the facts as JSON for scripts and tests"})
def status(c, json_=False):
    """Show whether the sandbox VPS is up and how to reach it."""
    facts = _facts()
    if json_:
        print(json.dumps(facts, indent=2))
        return
    up_word = {True: "[green]up[/]", False: "[red]down[/]"}
    console.print(f"ssh     {facts['ssh']['user']}@{facts['ssh']['address']}:"
                  f"{facts['ssh']['port']}  {up_word[facts['ssh']['up']]}")
    console.print(f"docker  {facts['docker_host'] or '-'}  {up_word[facts['docker_up']]}")
    console.print(f"http    {facts['http_url']}")
    console.print(f"server  {facts['server_root']}")


@local_task(help={"purge": "also delete containers, images, volumes and keys"})
def down(c, purge=False):
    """Stop the sandbox's sshd and the dockerd it started."""
    paths = build.Paths.from_environment()
    for name, pidfile in (("sshd", paths.sshd_pid), ("dockerd", paths.docker_pid)):
        pid = _alive(pidfile)
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(60):
                if not _alive(pidfile):
                    break
                time.sleep(0.5)
            console.print(f"stopped {name} (pid {pid})")
        else:
            console.print(f"{name} was not running")
    if purge:
        local.run(["rm", "-rf", "--one-file-system", str(paths.root)])
        console.print(f"removed {paths.root}")


namespace = Collection("sandbox", up, down, status)


def fetch_page(url, host_header, timeout=5):
    """GET url with a Host header; (status, commit header, first line of body)."""
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", "/", headers={"Host": host_header})
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        return response.status, response.getheader("X-Helios-Commit", ""), body
    except OSError as error:
        return None, "", str(error)
    finally:
        connection.close()


@local_task(help={"env": "prod, staging or dev (default prod)", "json": "print JSON"})
def visit(c, env="prod", json_=False):
    """Fetch every Helios domain of ENV through the sandbox's nginx."""
    import re
    from rich.table import Table
    facts = _facts()
    app = inventory.load().app("helios")
    if env not in app.domains:
        raise AetherError(f"unknown environment {env!r}; pass --env prod, staging or dev")
    rows = []
    for domain, code in app.domains[env]:
        status, commit, body = fetch_page(facts["http_url"], domain)
        practice = re.search(r'data-practice="([^"]+)"', body or "")
        rows.append({"domain": domain, "status": status, "expected": code or "", "commit": commit,
                     "practice": practice.group(1) if practice else ""})
    if json_:
        print(json.dumps(rows, indent=2))
    else:
        table = Table(title=f"helios {env} through {facts['http_url']}", title_justify="left")
        for column in ("domain", "status", "practice", "commit"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["domain"], str(row["status"]), row["practice"], row["commit"][:12])
        console.print(table)
    bad = [r["domain"] for r in rows if r["status"] != 200 or r["practice"] != r["expected"]]
    if bad:
        raise AetherError(f"{len(bad)} domain(s) of helios {env} did not answer as expected: "
                          f"{', '.join(bad)}; deploy first: fab -H sandbox helios.deploy --env {env}")


namespace.add_task(visit)
