"""The one rich console every task prints through: steps, tables, summaries.

Library code never prints; task code calls ``step`` around each unit of
work so the operator sees a header, the outcome and how long it took.
"""
import os
import time
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Logs and pipes get a wide fixed width so tables stay readable there too.
_TTY = os.isatty(1)
console = Console(highlight=False, soft_wrap=False, force_terminal=None if _TTY else False,
                  width=None if _TTY or os.environ.get("COLUMNS") else 140)


def releases_table(app, host, states, containers):
    """Live and kept releases of APP in each of the host's environments."""
    from .release import kept
    running = {line.split()[0]: line.split()[1] for line in containers if line.split()}
    table = Table(title=f"{app.name} on {host.name}", title_justify="left")
    for column in ("env", "color", "commit", "ref", "since", "by", "container", "kept"):
        table.add_column(column)
    for env in host.environments:
        state = states.get(env, {})
        live = state.get("live")
        if not live:
            table.add_row(env, "-", "nothing deployed", "", "", "", "", "")
            continue
        name = app.color_name(env, live["color"])
        table.add_row(env, live["color"], live["commit"][:12], escape(live.get("ref") or ""),
                      live["at"], escape(live["by"]), f"{name} {running.get(name, 'missing')}",
                      ", ".join(r["commit"][:7] for r in kept(state, host.keep_releases)))
    return table


class Steps:
    """Times each step of a task and prints a summary table at the end."""

    def __init__(self, prefix=""):
        self.prefix = f"[bold cyan]{prefix}[/] " if prefix else ""
        self.done = []
        self.started = time.monotonic()

    @contextmanager
    def step(self, title, dry=False):
        mark = "[yellow]dry[/] " if dry else ""
        console.print(f"{self.prefix}[bold]==> {mark}{escape(title)}[/]")
        began = time.monotonic()
        note = {"result": "ok"}
        try:
            yield note
        except BaseException:
            self.done.append((title, "failed", time.monotonic() - began))
            console.print(f"{self.prefix}[red]  ✗ {escape(title)} failed[/]")
            raise
        spent = time.monotonic() - began
        self.done.append((title, note["result"], spent))
        console.print(f"{self.prefix}[green]  ✓[/] {escape(note['result'])} [dim]({spent:.1f}s)[/]")

    def summary(self, title, extra=()):
        table = Table(title=title, title_justify="left", show_edge=False)
        table.add_column("step")
        table.add_column("result")
        table.add_column("time", justify="right")
        for name, result, spent in self.done:
            table.add_row(escape(name), escape(result), f"{spent:.1f}s")
        total = time.monotonic() - self.started
        table.add_row("[bold]total[/]", "", f"[bold]{total:.1f}s[/]")
        console.print(table)
        for line in extra:
            console.print(line)
