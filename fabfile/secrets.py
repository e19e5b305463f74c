"""secrets.*: put the apps' decrypted env files on a server."""
from aether.cli import server_task, target_host
from aether.console import Steps, console
from aether.remote import Remote
from aether.tasks.secrets import Project, compare, push_pairs, write


@server_task(help={"app": "helios or aletheia (default: every app with env files)",
                   "env": "prod, staging or dev (default: every environment)",
                   "dry": "show what would change, change nothing"})
def push(c, app=None, env=None, dry=False):
    """Put decrypted env files on the host, mode 0600.

    Writes ROOT/APP/envs/.env.ENV for each app and environment asked for.

    Decrypts envs/APP/.env.ENV.enc here, in memory, and sends it over the
    SSH connection's standard input: no plaintext on this disk, in any
    command line or in the output, which names keys only. The server file
    is replaced atomically, and only when it differs.
    Example: fab -H vps1 secrets.push --app helios --env prod
    """
    _, host = target_host(c)
    project = Project()
    pairs = push_pairs(project, host, app, env)
    steps = Steps(host.name)
    echo = (lambda script: console.print(script, style="dim", markup=False, highlight=False))
    with Remote(host, dry=dry, echo=echo) as remote:
        with steps.step(f"compare {len(pairs)} env file(s) with {host.name}") as note:
            pushes = compare(project, remote, host, pairs)
            needed = [push for push in pushes if push.needed]
            note["result"] = f"{len(needed)} to write, {len(pushes) - len(needed)} up to date"
        for push in needed:
            with steps.step(f"push {push.app} {push.env}", dry=dry) as note:
                note["result"] = write(remote, host, push)
        if not needed:
            console.print("nothing to change")
        steps.summary(f"env files on {host.name}" + (": dry run, nothing changed" if dry else ""),
                      [f"[dim]{remote.connections} SSH connection(s), "
                       f"{remote.commands} remote command(s)[/]"])
