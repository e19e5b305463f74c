"""nginx.*: the front door, nginx-proxy, rendered from hosts.yml."""
from aether import deploy, files, nginx
from aether.cli import server_task, target_host
from aether.console import Steps, console
from aether.remote import Remote, quote


@server_task(help={"dry": "show what would change, change nothing"})
def push(c, dry=False):
    """Push nginx config and vhosts; test, reload, restore on failure.

    Starts nginx-proxy and creates the Docker networks if they are missing.
    A configuration nginx -t refuses is rolled back before any reload.
    Example: fab -H sandbox nginx.push --dry
    """
    inventory, host = target_host(c)
    steps = Steps(host.name)
    with Remote(host, dry=dry, echo=lambda s: console.print(f"[dim]{s}[/]")) as remote:
        with steps.step("push nginx configuration", dry=dry) as note:
            install = files.install_script(
                host.root, deploy.nginx_files_with_live(inventory, host),
                check=nginx.check_script(inventory, host),
                create_only=deploy.live_paths(inventory, host))
            out = remote.run(nginx.up_script(inventory, host, install), timeout=300,
                             failure=f"nginx on {host.name} kept its previous configuration")
            changed = files.changed_paths(out.stdout)
            note["result"] = ("changed " + ", ".join(changed)) if changed else "nothing to change"
        steps.summary(f"nginx on {host.name}",
                      [f"[dim]{remote.connections} SSH connection(s), {remote.commands} remote command(s)[/]"])


@server_task
def status(c):
    """Show nginx-proxy's state and which color each vhost serves."""
    inventory, host = target_host(c)
    with Remote(host) as remote:
        out = remote.run("\n".join([
            "docker inspect -f '{{.State.Status}} {{.State.Health.Status}}' nginx-proxy 2>/dev/null || echo missing",
            f"cd {quote(host.path('nginx', 'etc', 'live'))} 2>/dev/null && grep -H 'set ' *.conf || true",
        ]), changes=False).stdout
    console.print(out.rstrip())
