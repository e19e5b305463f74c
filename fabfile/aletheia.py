"""aletheia.*: deploy the Django backend, its migrations and Celery workers."""
import json

from aether import deploy as pipeline
from aether.cli import check_env, check_ref, server_task, target_host
from aether.console import console, releases_table
from rich.markup import escape

APP = "aletheia"
HELP = {"env": "prod, staging or dev", "dry": "show what would change, change nothing"}


def _app(c, env=None, needs_env=True):
    inventory, host = target_host(c)
    if needs_env:
        check_env(inventory, host, env)
    return inventory, host, inventory.app(APP)


@server_task(help={**HELP, "ref": "branch, tag or commit to deploy (default main)"})
def deploy(c, env=None, ref="main", dry=False):
    """Deploy REF to ENV: migrate, start beside live, switch.

    Builds the commit's image, runs its migrations and collectstatic in
    one-off containers (a failure stops here, the live release serving),
    starts the new web color, waits for its health check, points nginx at
    it, drains and stops the old color, then recreates the Celery workers
    (never two celery-beat). Needs shared.up and shared.db --env ENV.
    Example: fab -H vps1 aletheia.deploy --env prod --ref main
    """
    inventory, host, app = _app(c, env)
    check_ref(ref)
    pipeline.Pipeline(inventory, host, app, env, dry=dry).run(ref=ref)


@server_task(help={**HELP, "to": "commit (or its first 12 characters) to go back to"})
def rollback(c, env=None, to=None, dry=False):
    """Put the previous release of ENV back live (or --to COMMIT).

    Uses the image kept from that release: nothing is fetched or built.
    Its migrations are already applied, so migrate has nothing to do;
    the schema stays as the newer release left it.
    """
    inventory, host, app = _app(c, env)
    pipeline.rollback(inventory, host, app, env, to=to, dry=dry)


@server_task(help={"json": "print the releases as JSON"})
def status(c, json_=False):
    """Show the live and kept releases and the workers."""
    _, host, app = _app(c, needs_env=False)
    states, containers = pipeline.status(host, app)
    if json_:
        print(json.dumps({"states": states, "containers": containers}, indent=2))
        return
    console.print(releases_table(app, host, states, containers))
    workers = [line for line in containers if "-web-" not in line.split()[0]]
    for line in workers:
        console.print(f"  [dim]{escape(line)}[/]")


@server_task(help={"env": "prod, staging or dev", "lines": "how many lines (default 100)",
                   "service": "web (default), celery, celery-heavy or celery-beat"})
def logs(c, env=None, service="web", lines="100"):
    """Show the last log lines of ENV's live web or a worker."""
    _, host, app = _app(c, env)
    console.print(pipeline.log_lines(host, app, env, service, lines).rstrip(), markup=False)


@server_task(help={"env": "prod, staging or dev"})
def unlock(c, env=None):
    """Remove ENV's deploy lock left behind by a deploy that died."""
    _, host, app = _app(c, env)
    said = pipeline.unlock(host, app, env)
    console.print(f"{APP} {env} on {host.name}: {escape(said)}")
