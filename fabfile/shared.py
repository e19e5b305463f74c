"""shared.*: the PostgreSQL and Redis every app and environment shares."""
import shlex
import sys

from aether import files, release, shared
from aether.cli import check_env, server_task, target_host
from aether.console import Steps, console
from aether.errors import AetherError
from aether.remote import Remote


def _remote(host, dry=False):
    return Remote(host, dry=dry, echo=lambda text: console.print(f"[dim]  would: {text}[/]"))


@server_task(help={"dry": "show what would change, change nothing"})
def up(c, dry=False):
    """Start shared_postgres and shared_redis from hosts.yml.

    Creates the networks and the superuser's password (kept on the server,
    mode 0600) if missing, pushes the compose file and waits until both
    containers are healthy. Safe to run again.
    Example: fab -H vps1 shared.up
    """
    inventory, host = target_host(c)
    steps = Steps(host.name)
    address, port = shared.published_port(inventory)
    with _remote(host, dry) as remote, steps.step("shared services", dry=dry) as note:
        install = files.install_script(host.root, shared.files(inventory, host))
        outcome = remote.run(
            shared.up_script(inventory, host, install), timeout=300, check=False,
            summary="create the networks and ROOT/shared/.env if missing, write "
                    "shared/docker-compose.yml, start shared_postgres and shared_redis")
        if outcome.exited == 66:
            raise AetherError(f"{address}:{port} is taken on {host.name} by another program; "
                              "stop it, or change shared.postgres.publish in hosts.yml")
        if not outcome.ok:
            raise AetherError(f"the shared services did not become healthy on {host.name}; "
                              f"see: fab -H {host.name} shared.status")
        changed = files.changed_paths(outcome.stdout)
        note["result"] = ("would start both" if dry else
                          "healthy; " + (("changed " + ", ".join(changed)) if changed
                                         else "nothing to change"))
    steps.summary(f"shared services on {host.name}")


@server_task(help={"env": "prod, staging or dev", "dry": "show what would change, change nothing"})
def db(c, env=None, dry=False):
    """Create ENV's database and role, and umami's, if missing.

    Each role owns its database and is the only one that may connect to
    it. Its password is read on the server from ROOT/APP/envs/.env.ENV
    (DATABASE_PASSWORD, written by secrets.push) or, until that has it,
    generated once into ROOT/shared/secrets/. Never shown, never in argv.
    Example: fab -H vps1 shared.db --env prod
    """
    inventory, host = target_host(c)
    check_env(inventory, host, env)
    names = [name for name, _, _ in shared.roles(inventory, host, env)]
    steps = Steps(host.name)
    with _remote(host, dry) as remote, steps.step(f"databases {', '.join(names)}",
                                                  dry=dry) as note:
        outcome = remote.run(shared.db_script(inventory, host, env), timeout=120, check=False,
                             summary=f"create or update the roles and databases {', '.join(names)}")
        if outcome.exited == 66:
            raise AetherError(f"shared_postgres is not running on {host.name}; "
                              f"run: fab -H {host.name} shared.up")
        if not outcome.ok:
            raise AetherError(f"creating the databases of {env} failed on {host.name}: "
                              f"{outcome.stderr.strip().splitlines()[-1:] or ['?']}")
        ready = [line.split()[1] for line in outcome.stdout.splitlines()
                 if line.startswith("ready ")]
        note["result"] = ("would create them" if dry else
                          f"{', '.join(ready)} ready, each open to its own role only")
    steps.summary(f"databases of {env} on {host.name}")


@server_task(help={"json": "print the state as JSON"})
def status(c, json_=False):
    """Show the shared services, their databases and Redis DBs."""
    import json
    inventory, host = target_host(c)
    with _remote(host) as remote:
        out = remote.run(shared.status_script(inventory), changes=False).stdout
    sections = release.parse_sections(out)
    if json_:
        print(json.dumps(sections, indent=2))
        return
    for title in ("containers", "ports", "databases", "redis"):
        console.print(f"[bold]{title}[/]")
        for line in sections.get(title, []) or ["-"]:
            console.print(f"  {line}")


@server_task(help={"db": "database to open (aletheia_prod, umami, postgres ...)",
                   "user": "log in as this app role with its password, as the app would",
                   "command": "run this SQL and exit instead of an interactive psql"})
def psql(c, db, user=None, command=None):
    """Open psql on a shared database (or run --command).

    As the superuser by default; with --user ROLE over TCP with that role's
    password, to see exactly what the app may do.
    Example: fab -H vps1 shared.psql --db aletheia_dev --command 'select 1'
    """
    inventory, host = target_host(c)
    known = [name for name, _, _ in shared.roles(inventory, host)] + ["postgres"]
    if db not in known:
        raise AetherError(f"unknown database {db!r} on {host.name} (known: {', '.join(known)})")
    if user and not shared.role_sources(inventory, host, user):
        raise AetherError(f"unknown role {user!r} (known: {', '.join(known[:-1])})")
    tty = command is None and sys.stdin.isatty()
    with _remote(host) as remote:
        status = remote.attach(shared.psql_script(inventory, host, db, user, command, tty), tty)
    if status:
        raise AetherError(f"psql on {db} exited with status {status}")


@server_task(help={"env": "prod, staging or dev",
                   "app": "whose Redis DB (default aletheia)",
                   "use": "which of the app's DBs: broker, cache, isr (default its first)",
                   "command": "run this redis-cli command and exit, e.g. 'INFO keyspace'"})
def redis_cli(c, env=None, app="aletheia", use=None, command=None):
    """Open redis-cli on ENV's Redis DB (or run --command).

    The DB number comes from hosts.yml: aletheia prod broker is DB 0.
    Example: fab -H vps1 shared.redis-cli --env prod --command 'DBSIZE'
    """
    inventory, host = target_host(c)
    check_env(inventory, host, env)
    dbs = inventory.app(app).redis.get(env, {})
    if not dbs:
        raise AetherError(f"{app} {env} has no Redis DB in {inventory.source}")
    use = use or next(iter(dbs))
    if use not in dbs:
        raise AetherError(f"{app} {env} has no Redis DB for {use!r} (known: {', '.join(dbs)})")
    words = shlex.split(command) if command else []
    tty = not words and sys.stdin.isatty()
    with _remote(host) as remote:
        argv = shared.redis_cli_argv(inventory, dbs[use], words, tty)
        status = remote.attach(" ".join(shlex.quote(w) for w in argv), tty)
    if status:
        raise AetherError(f"redis-cli on DB {dbs[use]} exited with status {status}")
