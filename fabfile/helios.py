"""helios.*: deploy the practices' Next.js sites with zero downtime."""
import json

from aether import deploy as deploy_
from aether.cli import check_env, check_ref, server_task, target_host
from aether.console import console, releases_table
from aether.deploy import Pipeline
from rich.markup import escape

APP = "helios"
HELP = {"env": "prod, staging or dev", "dry": "show what would change, change nothing"}


@server_task(help={**HELP, "ref": "branch, tag or commit to deploy (default main)"})
def deploy(c, env=None, ref="main", dry=False):
    """Deploy REF to ENV beside the live release, then switch.

    Builds the commit's image, starts it as the idle color, waits for its
    health check, points nginx at it, drains and stops the old color.
    A failure at any step leaves the live release serving.
    Example: fab -H vps1 helios.deploy --env prod --ref main
    """
    inventory, host = target_host(c)
    check_env(inventory, host, env)
    check_ref(ref)
    Pipeline(inventory, host, inventory.app(APP), env, dry=dry).run(ref=ref)


@server_task(help={**HELP, "to": "commit (or its first 12 characters) to go back to"})
def rollback(c, env=None, to=None, dry=False):
    """Put the previous release of ENV back live (or --to COMMIT).

    Uses the image kept from that release: nothing is fetched or built.
    """
    inventory, host = target_host(c)
    check_env(inventory, host, env)
    deploy_.rollback(inventory, host, inventory.app(APP), env, to=to, dry=dry)


@server_task(help={"json": "print the releases as JSON"})
def status(c, json_=False):
    """Show the live and kept releases of every environment."""
    inventory, host = target_host(c)
    app = inventory.app(APP)
    states, containers = deploy_.status(host, app)
    if json_:
        print(json.dumps({"states": states, "containers": containers}, indent=2))
        return
    console.print(releases_table(app, host, states, containers))


@server_task(help={"env": "prod, staging or dev", "lines": "how many lines (default 100)"})
def logs(c, env=None, lines="100"):
    """Show the last log lines of ENV's live Helios container."""
    inventory, host = target_host(c)
    check_env(inventory, host, env)
    console.print(deploy_.log_lines(host, inventory.app(APP), env, "web", lines).rstrip(),
                  markup=False)


@server_task(help={"env": "prod, staging or dev"})
def unlock(c, env=None):
    """Remove ENV's deploy lock left behind by a deploy that died."""
    inventory, host = target_host(c)
    check_env(inventory, host, env)
    said = deploy_.unlock(host, inventory.app(APP), env)
    console.print(f"{APP} {env} on {host.name}: {escape(said)}")
