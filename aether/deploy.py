"""Run a release of an app on one host: the pipeline behind APP.deploy.

The steps, each one remote command over one SSH connection:

  inspect   read the recorded releases, take the deploy lock
  fetch     fetch REF into ROOT/APP/repo and resolve it to a commit
  build     build APP:COMMIT12 from that commit (skipped if it exists)
  (app)     the app's own steps before the start (Aletheia: migrations)
  start     start the idle color beside the live one, wait for health
  switch    point nginx at it: test the config, reload, check through nginx
  retire    let the old color drain, then stop it
  (app)     the app's own steps once it is live (Aletheia: its workers)
  record    write the new state and audit line, prune images, unlock

A failure before ``switch`` completes leaves the old color serving and the
new one removed; the lock is always released and the failure audited. The
app's steps come from ``HOOKS``: a module with ``before_start`` and
``after_switch`` returning ``release.Step`` lists (see ``aether.aletheia``).
"""
import getpass
import signal
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from rich.markup import escape

from . import aletheia, apps, files, nginx, release, secrets
from .console import Steps, console
from .errors import AetherError, RemoteError
from .remote import Remote, quote


def owner():
    return f"{getpass.getuser()}@{socket.gethostname()}"


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Apps whose releases add steps of their own.
HOOKS = {"aletheia": aletheia}


def app_files(inventory, host, app, env):
    """The app's compose files for ENV, by path relative to the host root."""
    return apps.compose_files(inventory, host, app, envs=(env,))


class Pipeline:
    """One deploy (or rollback) of APP to ENV on a host."""

    def __init__(self, inventory, host, app, env, dry=False):
        self.inventory, self.host, self.app, self.env = inventory, host, app, env
        self.steps = Steps(host.name)
        self.remote = Remote(host, dry=dry, echo=self._echo)
        self.dry = dry
        self.locked = False
        self.started = None        # the new color, once it runs
        self.committed = False     # True once nginx serves the new color
        self.switching = False     # True while the switch step runs
        self.interrupted = False

    def _on_interrupt(self, signum, frame):
        """Ctrl-C: let the step running on the server finish, then stop.

        Stopping mid-step could leave nginx on the new color while the
        records say otherwise. A second Ctrl-C abandons the step anyway.
        """
        if self.interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.interrupted = True
        then = ("finishing the deploy: the switch to the new release is under way or done"
                if self.committed or self.switching else "stopping before the switch")
        console.print(f"[yellow]interrupt: the current step finishes on the server, then "
                      f"{then} (Ctrl-C again to abandon the step)[/]")

    @contextmanager
    def _step(self, title, dry=False):
        """A step of the pipeline; an interrupt before the switch stops here."""
        if self.interrupted and not (self.committed or self.switching):
            raise AetherError(f"interrupted: stopped before {title}; "
                              f"{self.env} keeps serving its live release")
        with self.steps.step(title, dry=dry) as note:
            yield note

    def _echo(self, text):
        console.print(f"[dim]  would: {escape(text)}[/]")

    def run(self, ref=None, commit=None, action="deploy"):
        started = time.monotonic()
        audit = {"at": now(), "by": owner(), "host": self.host.name, "app": self.app.name,
                 "env": self.env, "action": action, "ref": ref}
        previous = signal.signal(signal.SIGINT, self._on_interrupt)
        try:
            result = self._run(ref, commit, audit)
        except BaseException as error:
            audit.update(result="failed", error=str(error).splitlines()[0] if str(error) else
                         type(error).__name__, seconds=round(time.monotonic() - started, 1))
            signal.signal(signal.SIGINT, signal.SIG_IGN)    # clean up without a second stop
            if self.started and not self.committed:
                self.remote.run(release.remove_script(self.host, self.app, self.env,
                                                      self.started), check=False)
            if self.locked:
                self._release_after_failure(audit)
            self.remote.close()
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
        audit.update(result="ok", seconds=round(time.monotonic() - started, 1))
        self.remote.close()
        return result

    def _release_after_failure(self, audit):
        script = release.finish_script(self.host, self.app, self.env, None, audit, ())
        try:
            self.remote.run(script)
        except AetherError:
            console.print(f"[red]could not release the lock; remove it by hand: "
                          f"{release.Paths(self.host, self.app, self.env).lock}[/]")

    def _run(self, ref, commit, audit):
        host, app, env, dry = self.host, self.app, self.env, self.dry
        would = "would " if dry else ""
        keeps = f"{env} keeps serving its live release"
        required = secrets.example_keys(app.name)
        if required is not None:    # the app's env file must be pushed, with every key
            with self._step(f"env file .env.{env}") as note:
                outcome = self.remote.run(secrets.pushed_check_script(host, app.name, env, required),
                                          changes=False, check=False)
                note["result"] = secrets.pushed_check_result(host, app.name, env, outcome, required)
        with self._step(f"inspect {app.name} {env}") as note:
            sections = release.parse_sections(self.remote.run(
                release.inspect_script(host, app, env, f"{owner()} since {now()} ({ref or commit})",
                                       take_lock=not dry), changes=False).stdout)
            if "locked" in sections:
                who = " ".join(sections["locked"]) or "someone"
                raise AetherError(
                    f"{app.name} {env} on {host.name} is locked by {who}; if that deploy is dead, "
                    f"run: fab -H {host.name} {app.name}.unlock --env {env}")
            self.locked = not dry
            states = release.states(sections)
            current = states.get(env, {})
            live = current.get("live")
            # Never start over the color nginx serves, even if an interrupted
            # deploy left the recorded state behind.
            serving = release.serving_color(sections) or (live or {}).get("color")
            color = release.other(serving) if serving else release.COLORS[0]
            note["result"] = (f"live: {live['color']} {live['commit'][:12]}" if live
                              else "nothing live yet") + f"; next color {color}"
            if live and serving != live["color"]:
                note["result"] += f" (nginx serves {serving}, not the recorded {live['color']})"
                live = dict(live, color=serving)
        self._front_door(sections)
        if commit is None:
            with self._step(f"{'resolve' if dry else 'fetch'} {ref}") as note:
                commit = self._fetch(ref)
                note["result"] = commit[:12]
        tag = release.image(app, commit)
        with self._step(f"build {tag}", dry=dry) as note:
            if dry:     # a read-only look says whether the build would run at all
                cached = self.remote.run(release.image_exists_script(tag), changes=False,
                                         check=False).ok
                note["result"] = "cached, nothing to build" if cached else "would build"
            else:
                out = self.remote.run(release.build_script(host, app, commit), timeout=1800,
                                      failure=f"building {tag} failed; {keeps}")
                note["result"] = out.stdout.strip().splitlines()[-1]
        new_name = app.color_name(env, color)
        hooks = HOOKS.get(app.name)
        install = files.install_script(host.root, app_files(self.inventory, host, app, env))
        if hooks:
            for step in hooks.before_start(self.inventory, host, app, env, color, tag, install):
                self._hook(step)
        with self._step(f"start {release.project(app, env, color)}", dry=dry) as note:
            self.started = None if dry else color
            self.remote.run(install + "\n" + release.start_script(host, app, env, color, tag, 180),
                            timeout=300,
                            summary=f"write {app.name}'s compose files, start {new_name} "
                                    f"from {tag}, wait for {app.health}",
                            failure=f"{new_name} did not become healthy; {keeps}")
            note["result"] = f"{would}start {new_name}" if dry else f"{new_name} healthy"
        with self._step(f"switch nginx to {color}", dry=dry) as note:
            self.switching = not dry
            try:
                self.remote.run(self._switch_script(color), timeout=120,
                                summary=f"point {nginx.live_path(app, env)} at {new_name}, "
                                        "nginx -t, reload, probe through nginx",
                                failure=f"nginx did not take {color}; {keeps}")
            except RemoteError:
                self.remote.run(release.remove_script(host, app, env, color), check=False)
                raise
            self.committed = not dry
            note["result"] = f"{would}serve {len(app.domains.get(env, ()))} domains from {color}"
        # From here on the new release is live: a failure is reported, but
        # the release is recorded all the same, so the records never lie.
        late_failure = None
        try:
            if live:
                self._retire(live["color"])
            for step in hooks.after_switch(self.inventory, host, app, env, color, tag) if hooks else ():
                self._hook(step)
        except AetherError as error:
            late_failure = error
        new_live = {"color": color, "commit": commit, "image": tag, "ref": ref,
                    "at": now(), "by": owner()}
        state = release.next_state(current, app, env, new_live)
        states[env] = state
        audit.update(commit=commit, color=color, result="ok")
        if late_failure:
            audit.update(result="failed", error=str(late_failure))
        with self._step("record release", dry=dry) as note:
            keep = release.images_to_keep(states, host.keep_releases)
            self.remote.run(release.finish_script(host, app, env, state, audit, keep),
                            summary=f"record {commit[:12]} live on {color}, append to the audit "
                                    f"log, keep {len(keep)} image(s), release the lock")
            self.locked = False
            note["result"] = f"{would}keep {len(keep)} image(s)"
        if late_failure:
            raise late_failure
        verdict = "dry run, nothing changed" if dry else f"{commit[:12]} live on {color}"
        self.steps.summary(
            f"{app.name} {env} on {host.name}: {verdict}",
            [f"[dim]{self.remote.connections} SSH connection(s), "
             f"{self.remote.commands} remote command(s)[/]"])
        return new_live

    def _retire(self, old):
        host, app, env = self.host, self.app, self.env
        old_name = app.color_name(env, old)
        with self._step(f"retire {old}", dry=self.dry) as note:
            self.remote.run(release.retire_script(app, env, old, host.drain_seconds),
                            timeout=release.DRAIN_LIMIT + 120,
                            summary=f"wait {host.drain_seconds}s, then while requests are open "
                                    f"(up to {release.DRAIN_LIMIT}s), stop {old_name}",
                            failure=f"stopping {old_name} failed; the new release serves all the same")
            note["result"] = f"{'would ' if self.dry else ''}drain and stop {old_name}"

    def _hook(self, step):
        """Run one of the app's own steps (a ``release.Step``)."""
        with self._step(step.title, dry=self.dry and step.changes) as note:
            outcome = self.remote.run(step.script, changes=step.changes, timeout=step.timeout,
                                      summary=step.summary, failure=step.failure)
            if self.dry and step.changes:
                note["result"] = "not run (dry)"
            elif step.changes:
                note["result"] = step.result
            else:   # a check says what it found
                note["result"] = (outcome.stdout.strip().splitlines() or [step.result])[-1]

    def _front_door(self, sections):
        """Bring up the networks and nginx-proxy if this host lacks them.

        nginx-proxy is (re)started too when it does not yet answer for the
        app's stable name, which it holds on the web network.
        """
        networks = set(sections.get("networks", []))
        running = sections.get("nginx", ["missing"])[0] == "true"
        named = self.app.stable_name(self.env) in sections.get("aliases", [])
        if running and named and networks.issuperset(self.inventory.networks):
            return
        with self._step("front door (networks, nginx-proxy)", dry=self.dry) as note:
            install = files.install_script(
                self.host.root, nginx_files_with_live(self.inventory, self.host),
                check=nginx.check_script(self.inventory, self.host),
                create_only=live_paths(self.inventory, self.host))
            self.remote.run(nginx.up_script(self.inventory, self.host, install), timeout=300,
                            summary="create the Docker networks, push nginx's files, start nginx-proxy")
            note["result"] = "would start nginx-proxy" if self.dry else "nginx-proxy running"

    def _fetch(self, ref):
        """Fetch and resolve REF; a dry run resolves it without fetching."""
        script = release.fetch_script(self.host, self.app, ref, fetch=not self.dry)
        outcome = self.remote.run(script, timeout=600, check=False, changes=False)
        if outcome.exited == 64:
            raise AetherError(f"unknown ref {ref!r}: no branch, tag or commit of that name in "
                              f"{self.host.repo(self.app)}; push it first or check the spelling")
        if not outcome.ok:
            raise RemoteError(f"fetching {self.host.repo(self.app)} failed on {self.host.name}",
                              outcome.stderr + outcome.stdout)
        return outcome.stdout.strip().splitlines()[-1]

    def _switch_script(self, color):
        host, app, env = self.host, self.app, self.env
        vhost = {path: text for path, text in nginx.files(self.inventory, host).items()
                 if path.endswith(f"/{app.name}-{env}.conf")}
        live = {nginx.live_path(app, env): nginx.live_file(app, env, color)}
        install = files.install_script(host.root, {**vhost, **live},
                                       check=nginx.check_script(self.inventory, host))
        domain = app.domains[env][0][0]
        probe = (f"docker exec nginx-proxy curl -fsS -o /dev/null -H {quote('Host: ' + domain)} "
                 f"http://127.0.0.1{app.health}")
        return "\n".join([
            install,
            # After the reload, ask nginx itself until the new color answers.
            "for i in $(seq 1 40); do",
            f"  if {probe} 2>/dev/null; then exit 0; fi",
            "  sleep 0.25",
            "done",
            "restore",
            nginx.test_and_reload(host),
            f"echo 'nginx did not reach {app.color_name(env, color)} after the switch;"
            " previous color restored' >&2",
            "exit 71",
        ])


def live_paths(inventory, host):
    return {nginx.live_path(app, env) for app, env, _ in nginx.vhosts(inventory, host)}


def nginx_files_with_live(inventory, host):
    """nginx's files plus a default live file (blue) for vhosts that lack one."""
    out = dict(nginx.files(inventory, host))
    for app, env, _ in nginx.vhosts(inventory, host):
        out[nginx.live_path(app, env)] = nginx.live_file(app, env, release.COLORS[0])
    return out


def _states(host, app):
    with Remote(host) as remote:
        sections = release.parse_sections(remote.run(
            release.inspect_script(host, app, host.environments[0], "", take_lock=False),
            changes=False).stdout)
    return release.states(sections), sections.get("containers", [])


def rollback(inventory, host, app, env, to=None, dry=False):
    """Put the previous release of ENV (or the one matching TO) back live."""
    state = _states(host, app)[0].get(env, {})
    earlier = release.kept(state, host.keep_releases)   # other commits than the live one
    if not earlier:
        raise AetherError(f"{app.name} {env} on {host.name} has no earlier release to roll back to")
    pick = release.pick_release(earlier, to, f"{app.name} {env}")
    return Pipeline(inventory, host, app, env, dry=dry).run(
        ref=pick.get("ref"), commit=pick["commit"], action="rollback")


def status(host, app):
    """({env: state}, ["name state image", ...]) of APP on the host."""
    return _states(host, app)


def log_lines(host, app, env, service="web", lines=100):
    """The last LINES logged by ENV's live web (or one of its workers)."""
    if not str(lines).isdigit():
        raise AetherError(f"--lines {lines!r} is not a whole number; pass e.g. --lines 200")
    states, _ = _states(host, app)
    if service == "web":
        live = states.get(env, {}).get("live")
        if not live:
            raise AetherError(f"nothing of {app.name} {env} is live on {host.name}")
        name = app.color_name(env, live["color"])
    elif service in app.services:
        name = f"{app.name}-{env}-{service}"
    else:
        raise AetherError(f"{app.name} has no service {service!r} "
                          f"(known: {', '.join(app.services)})")
    with Remote(host) as remote:
        out = remote.run(f"docker logs --tail {int(lines)} {quote(name)} 2>&1", changes=False,
                         check=False)
    return out.stdout


def unlock(host, app, env):
    """Remove ENV's deploy lock; returns what the server said."""
    with Remote(host) as remote:
        return remote.run(release.unlock_script(host, app, env)).stdout.strip()
