"""nginx.*: the front door, nginx-proxy, rendered from hosts.yml."""
from aether import deploy, files, nginx
from aether.cli import server_task, target_host
from aether.console import Steps, console
from aether.remote import Remote, quote
from rich.markup import escape


def _files(inventory, host):
    return (deploy.nginx_files_with_live(inventory, host), deploy.live_paths(inventory, host))


@server_task(help={"dry": "show the diff of what would change, change nothing"})
def push(c, dry=False):
    """Push nginx config and vhosts; test, reload, restore on failure.

    Starts nginx-proxy and creates the Docker networks if they are missing.
    A configuration nginx -t refuses is rolled back before any reload.
    Example: fab -H sandbox nginx.push --dry
    """
    inventory, host = target_host(c)
    if dry:
        return _show_diff(inventory, host)
    steps = Steps(host.name)
    rendered, create_only = _files(inventory, host)
    with Remote(host) as remote:
        with steps.step("push nginx configuration") as note:
            install = files.install_script(host.root, rendered, create_only=create_only,
                                           check=nginx.check_script(inventory, host))
            out = remote.run(nginx.up_script(inventory, host, install), timeout=300,
                             failure=f"nginx on {host.name} kept its previous configuration")
            changed = files.changed_paths(out.stdout)
            note["result"] = ("changed " + ", ".join(changed)) if changed else "nothing to change"
        steps.summary(f"nginx on {host.name}",
                      [f"[dim]{remote.connections} SSH connection(s), "
                       f"{remote.commands} remote command(s)[/]"])


@server_task
def diff(c):
    """Show how the server's nginx files differ from hosts.yml."""
    inventory, host = target_host(c)
    _show_diff(inventory, host)


def _show_diff(inventory, host):
    rendered, create_only = _files(inventory, host)
    with Remote(host) as remote:
        out = remote.run(files.diff_script(host.root, rendered, create_only), changes=False).stdout
    changed = files.changed_paths(out)
    for line in out.splitlines():
        if line.startswith("changed "):
            continue
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        console.print(f"[{style}]{escape(line)}[/]")
    console.print(f"{len(changed)} file(s) would change: {', '.join(changed)}" if changed
                  else "nothing to change")


@server_task
def status(c):
    """Show nginx-proxy's state and which color each vhost serves."""
    inventory, host = target_host(c)
    with Remote(host) as remote:
        out = remote.run("\n".join([
            "docker inspect -f '{{.State.Status}} {{.State.Health.Status}}' nginx-proxy"
            " 2>/dev/null || echo missing",
            f"cd {quote(host.path('nginx', 'etc', 'live'))} 2>/dev/null"
            " && grep -H 'set ' *.conf || true",
        ]), changes=False).stdout
    console.print(out.rstrip())
