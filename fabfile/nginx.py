"""nginx.*: the front door, nginx-proxy, rendered from hosts.yml."""
from aether import deploy, files, nginx, release
from aether.cli import server_task, target_host
from aether.console import Steps, console
from aether.remote import Remote, quote
from rich.markup import escape
from rich.table import Table


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
    """Show nginx-proxy and the color each vhost sends traffic to."""
    inventory, host = target_host(c)
    with Remote(host) as remote:
        sections = release.parse_sections(remote.run("\n".join([
            "echo '@@proxy'; docker inspect -f '{{.State.Status}} {{.State.Health.Status}}'"
            " nginx-proxy 2>/dev/null || echo missing",
            "echo '@@running'; docker ps --format '{{.Names}}'",
            f"echo '@@live'; cd {quote(host.path('nginx', 'etc', 'live'))} 2>/dev/null"
            " && grep -o -H -- 'http://[^;]*' *.conf || true",
        ]), changes=False).stdout)
    console.print(f"nginx-proxy on {host.name}: {escape(' '.join(sections.get('proxy', ['?'])))}")
    running = set(sections.get("running", []))
    table = Table(title="vhosts", title_justify="left")
    for column in ("vhost", "domains", "sends to", "container"):
        table.add_column(column)
    targets = dict(line.split(":", 1) for line in sections.get("live", []) if ":" in line)
    for app, env, domains in nginx.vhosts(inventory, host):
        target = targets.get(f"{app.name}-{env}.conf", "")
        name = target.removeprefix("http://").split(":")[0]
        state = "[green]running[/]" if name in running else "[red]missing: answers 502[/]"
        table.add_row(f"{app.name}-{env}", str(len(domains)), escape(target or "-"),
                      f"{escape(name)} {state}" if name else "-")
    console.print(table)
