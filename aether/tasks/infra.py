"""infra.*: see what Aether will run on a host, and the files it pushes."""
import json
from pathlib import Path

from invoke import Collection
from rich.table import Table

from .. import inventory, plan
from ..cli import local_task
from ..console import console
from ..errors import AetherError


def _host(name):
    inv = inventory.load()
    if not name:
        raise AetherError(f"no host given: pass --host with one of {', '.join(inv.hosts)}")
    return inv, inv.host(name)


def _table(title, columns, rows):
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        # Names are what people search for: never cut the first column.
        table.add_column(column, no_wrap=index == 0, overflow="fold")
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    console.print(table)


def _oom(container):
    if container["oom_skipped"]:
        return f"{container['oom_score_adj_wanted']} (skipped here)"
    return str(container["oom_score_adj"])


@local_task(help={"host": "a host from hosts.yml", "json": "print the plan as JSON"})
def plan_(c, host=None, json_=False):
    """Show everything Aether runs on a host, from hosts.yml alone."""
    inv, target = _host(host)
    result = plan.plan(inv, target)
    if json_:
        print(json.dumps(result, indent=2))
        return
    h = result["host"]
    console.print(f"[bold]{h['name']}[/] {h['user']}@{h['address']}:{h['port']}  root {h['root']}")
    _table("containers", ["name", "image", "networks", "ports", "oom", "memory", "restart", "note"],
           [(x["name"], x["image"], ",".join(x["networks"]), " ".join(x["ports"]), _oom(x),
             x["mem_limit"] or "-", x["restart"], x["note"]) for x in result["containers"]])
    _table("vhosts", ["app", "env", "server names", "upstream"],
           [(v["app"], v["env"], "\n".join(v["server_names"]), v["upstream"])
            for v in result["vhosts"]])
    _table("databases", ["database", "role", "app", "env", "connect", "password from"],
           [(d["database"], d["role"], d["app"], d["env"], d["connect"],
             "\n".join(d["password_from"])) for d in result["databases"]])
    _table("redis", ["db", "app", "env", "use"],
           [(r["db"], r["app"], r["env"], r["use"]) for r in result["redis"]])
    _table("releases", ["app", "deploy steps"],
           [(app, " → ".join(steps)) for app, steps in result["releases"].items()])
    _table("files", ["path"], [(path,) for path in result["files"]])
    _table("local files (developers' machines, never pushed)", ["path"],
           [(path,) for path in result["local_files"]])
    _table("generated on the server (0600, never pushed)", ["path"],
           [(path,) for path in result["generated_secrets"]])


@local_task(help={"host": "a host from hosts.yml", "out": "folder to write into (created)"})
def render(c, host=None, out="out"):
    """Write every file Aether would push to a host into a folder.

    Files are laid out as on the server: OUT/opt/docker/nginx/... for vps1;
    files for developers' machines (Aletheia's docker-compose.override.yml)
    go under OUT/local/APP/.
    """
    inv, target = _host(host)
    written = 0
    local = {f"local/{path}": text for path, text in plan.local_files(inv, target).items()}
    for path, text in {**plan.files(inv, target), **local}.items():
        destination = Path(out) / path.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text)
        written += 1
    console.print(f"wrote {written} files for {target.name} under {Path(out).resolve()}"
                  f" ({len(local)} for developers under local/)")


namespace = Collection("infra", render)
namespace.add_task(plan_, name="plan")
