"""The release model shared by every app: colors, state, locks, audit log.

A release is one git commit of one app, built once into the image
``APP:COMMIT12`` and run in one environment under a color, blue or green.
The live color serves traffic; a deploy starts the other color beside it,
waits for its health check, points nginx at it, lets the old one drain and
stops it. Other containers keep using the stable name (``helios-prod-web``),
which nginx-proxy holds on the web network and passes to the live color.

What each environment runs is recorded on the server, so any laptop sees
the same truth:

    ROOT/.aether/releases/APP-ENV.json   live release and earlier ones
    ROOT/.aether/locks/APP-ENV/owner     who is deploying, while they are
    ROOT/.aether/audit.log               one JSON line per change

Everything here builds scripts or parses their output; ``aether.deploy``
runs them.
"""
import json
import re
from dataclasses import dataclass

from .errors import AetherError
from .remote import command, quote

COLORS = ("blue", "green")
HISTORY = 20
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@{}^~+-]{0,199}$")


def other(color):
    return COLORS[1] if color == COLORS[0] else COLORS[0]


def image(app, commit):
    return f"{app.name}:{commit[:12]}"


def project(app, env, color):
    """The Compose project of one release color: helios-prod-blue."""
    return f"{app.name}-{env}-{color}"


def ref_problem(ref):
    """Why a ref can never name a commit, or None. Refs never start with '-'."""
    if not ref:
        return "is empty"
    if ref.startswith("-"):
        return "starts with '-'"
    if any(ch in ref for ch in "\0\n\r"):
        return "contains a control character"
    return None


class Paths:
    """Where the release model keeps its files on one host."""

    def __init__(self, host, app, env):
        self.base = host.path(".aether")
        self.state = f"{self.base}/releases/{app.name}-{env}.json"
        self.lock = f"{self.base}/locks/{app.name}-{env}"
        self.audit = f"{self.base}/audit.log"
        self.app_dir = host.path(app.name)
        self.repo = host.path(app.name, "repo")


def inspect_script(host, app, env, owner, take_lock):
    """Read the state of APP ENV on the host, and take its deploy lock.

    Prints sections headed ``@@name``: the state files of the app in every
    environment, the Docker networks, whether nginx-proxy runs, and which
    release containers exist.
    """
    paths = Paths(host, app, env)
    live_file = host.path("nginx", "etc", "live", f"{app.name}-{env}.conf")
    lines = []
    if take_lock:
        lines += [
            f"mkdir -p {quote(paths.base)}/releases {quote(paths.base)}/locks",
            f"if ! mkdir {quote(paths.lock)} 2>/dev/null; then",
            f"  echo '@@locked'; cat {quote(paths.lock)}/owner 2>/dev/null || true; exit 0",
            "fi",
            f"printf '%s\\n' {quote(owner)} > {quote(paths.lock)}/owner",
        ]
    lines += [
        f"for f in {quote(paths.base)}/releases/{quote(app.name)}-*.json; do",
        '  [ -e "$f" ] || continue; printf "@@state %s\\n" "$(basename "$f" .json)"; cat "$f"; echo',
        "done",
        "echo '@@networks'; docker network ls --format '{{.Name}}'",
        "echo '@@nginx'; docker inspect -f '{{.State.Running}}' nginx-proxy 2>/dev/null"
        " || echo missing",
        "echo '@@aliases'; docker inspect -f '{{range .NetworkSettings.Networks}}"
        "{{range .Aliases}}{{println .}}{{end}}{{end}}' nginx-proxy 2>/dev/null || true",
        # The color nginx actually sends ENV's traffic to, whatever the state says.
        f"echo '@@serving'; grep -o -- '-web-[a-z]*:' {quote(live_file)} 2>/dev/null"
        " | tr -d ':' | sed 's/^-web-//' || true",
        "echo '@@containers'",
        f"docker ps -a --filter label=aether.app={quote(app.name)} "
        "--format '{{.Names}} {{.State}} {{.Label \"aether.image\"}}'",
    ]
    return "\n".join(lines)


def parse_sections(stdout):
    """Split ``@@name`` sections into {name: [lines]}."""
    sections, current = {}, None
    for line in stdout.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        elif current is not None and line.strip():
            sections[current].append(line)
    return sections


def states(sections):
    """{env: state dict} from the ``@@state APP-ENV`` sections."""
    out = {}
    for name, lines in sections.items():
        if name.startswith("state "):
            env = name.split(" ", 1)[1].rsplit("-", 1)[1]
            try:
                out[env] = json.loads("\n".join(lines))
            except json.JSONDecodeError:
                out[env] = {}
    return out


def serving_color(sections):
    """The color nginx's live file points at, or None if it has none yet."""
    found = [c for c in sections.get("serving", []) if c in COLORS]
    return found[0] if found else None


def fetch_script(host, app, ref, fetch=True):
    """Fetch the app's remote into ROOT/APP/repo and print REF's commit.

    REF is tried as a branch of origin, then a tag, then a commit. It is
    passed as one quoted word and never as an option. With ``fetch=False``
    (dry runs) nothing is written: REF is resolved with ls-remote, or in
    the existing clone when it names a commit.
    """
    paths = Paths(host, app, env="")
    head = [f"repo={quote(paths.repo)} url={quote(host.repo(app))} ref={quote(ref)}"]
    if not fetch:
        return "\n".join(head + [
            # A branch wins over a tag; an annotated tag resolves to its commit.
            'found=$(git ls-remote "$url" | REF="$ref" awk \''
            '$2 == "refs/heads/" ENVIRON["REF"] {b = $1} '
            '$2 == "refs/tags/" ENVIRON["REF"] "^{}" {p = $1} '
            '$2 == "refs/tags/" ENVIRON["REF"] {t = $1} '
            'END {print b ? b : (p ? p : t)}\')',
            'if [ -n "$found" ]; then echo "$found"; exit 0; fi',
            'if [ -d "$repo/.git" ] && commit=$(git -C "$repo" rev-parse --verify --quiet'
            ' --end-of-options "$ref^{commit}"); then echo "$commit"; exit 0; fi',
            'echo "unknown ref" >&2; exit 64',
        ])
    return "\n".join(head + [
        'if [ ! -d "$repo/.git" ]; then git clone --quiet --no-checkout "$url" "$repo"; fi',
        'git -C "$repo" remote set-url origin "$url"',
        'git -C "$repo" fetch --quiet --prune --tags origin "+refs/heads/*:refs/remotes/origin/*"',
        'for candidate in "refs/remotes/origin/$ref" "refs/tags/$ref" "$ref"; do',
        '  if commit=$(git -C "$repo" rev-parse --verify --quiet --end-of-options'
        ' "$candidate^{commit}"); then',
        '    echo "$commit"; exit 0',
        "  fi",
        "done",
        'echo "unknown ref" >&2; exit 64',
    ])


def image_exists_script(tag):
    """Exit 0 when the image is already on the host (read-only)."""
    return f"docker image inspect {quote(tag)} >/dev/null 2>&1"


def build_script(host, app, commit):
    """Build APP:COMMIT12 from the commit's tree unless it already exists."""
    paths = Paths(host, app, env="")
    tag = image(app, commit)
    build = command("docker", "build", "--quiet", "--target", app.target,
                    "--build-arg", f"COMMIT={commit}",
                    "--label", f"aether.app={app.name}", "--label", f"aether.commit={commit}",
                    "-t", tag, "-")
    return "\n".join([
        f"if {image_exists_script(tag)}; then echo cached; exit 0; fi",
        f"git -C {quote(paths.repo)} archive --format=tar {quote(commit)} | DOCKER_BUILDKIT=0 {build}",
        "echo built",
    ])


def compose_argv(app, env, color):
    return ["docker", "compose", "-p", project(app, env, color),
            "-f", "docker-compose.yml", "-f", f"docker-compose.{env}.yml"]


def start_script(host, app, env, color, tag, timeout):
    """Start one color and wait for its health check; on failure remove it.

    The stable name (APP-ENV-web) is not the container's: nginx-proxy
    holds it and follows the live file, so the new color gets the calls of
    other containers exactly when it gets the public traffic.
    """
    paths = Paths(host, app, env)
    name = app.color_name(env, color)
    compose = command(*compose_argv(app, env, color))
    return "\n".join([
        f"cd {quote(paths.app_dir)}",
        f"export ENVIRONMENT={quote(env)} COLOR={quote(color)} IMAGE={quote(tag)}",
        f"if ! {compose} up -d --no-build --pull never --wait --wait-timeout {int(timeout)} 2>&1; then",
        f"  echo '--- last lines logged by {name} ---'",
        f"  docker logs --tail 30 {quote(name)} 2>&1 || true",
        f"  {compose} down --timeout 5 >/dev/null 2>&1 || true",
        "  exit 70",
        "fi",
    ])


@dataclass(frozen=True)
class Step:
    """A remote step an app adds to its release (migrations, workers ...).

    ``failure`` is the one line shown if the script fails; ``changes`` is
    False for read-only checks, which also run in dry mode.
    """

    title: str
    script: str
    summary: str
    failure: str
    result: str
    changes: bool = True
    timeout: int = 300


DRAIN_LIMIT = 120   # seconds a retiring color may keep finishing requests


def retire_script(app, env, color, drain_seconds):
    """Let the old color finish its requests, then stop and remove it.

    After ``drain_seconds`` (nginx's old workers stop sending to it), it
    waits while the container still holds established connections on the
    app's port, up to DRAIN_LIMIT seconds, so a long request is not cut.
    """
    compose = command("docker", "compose", "-p", project(app, env, color))
    name = quote(app.color_name(env, color))
    port = f"{app.port:04X}"
    return "\n".join([
        f"sleep {int(drain_seconds)}",
        "open_requests() {  # established TCP connections to the app's port",
        f"  docker exec {name} cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"
        f" | awk '$2 ~ /:{port}$/ && $4 == \"01\"' | wc -l",
        "}",
        f"for i in $(seq 1 {DRAIN_LIMIT}); do",
        "  open=$(open_requests) || open=0",
        '  [ "${open:-0}" -gt 0 ] || break',
        "  sleep 1",
        "done",
        f"{compose} down --timeout 30 2>&1",
    ])


def remove_script(host, app, env, color):
    """Remove a color that never went live (after a failed switch)."""
    return command("docker", "compose", "-p", project(app, env, color), "down", "--timeout", "5")


def finish_script(host, app, env, state, audit, keep_images):
    """Record the new state and audit line, prune old images, unlock."""
    paths = Paths(host, app, env)
    lines = [f"base={quote(paths.base)}"]
    if state is not None:
        lines += [
            f"printf '%s\\n' {quote(json.dumps(state, sort_keys=True))} > {quote(paths.state)}.new",
            f"mv -f {quote(paths.state)}.new {quote(paths.state)}",
        ]
    lines.append(f"printf '%s\\n' {quote(json.dumps(audit, sort_keys=True))} >> {quote(paths.audit)}")
    if keep_images:
        keep = " ".join(quote(tag) for tag in sorted(keep_images))
        lines += [
            # Images younger than an hour may belong to a deploy under way
            # in another environment: leave them for the next prune.
            "for tag in $(docker image ls --filter until=1h"
            " --format '{{.Repository}}:{{.Tag}}' "
            f"{quote(app.name)}); do",
            f"  case \" {keep} \" in *\" $tag \"*) ;;",
            '    *) docker image rm "$tag" >/dev/null 2>&1 || true ;; esac',
            "done",
        ]
    lines.append(f"rm -rf {quote(paths.lock)}")
    return "\n".join(lines)


def unlock_script(host, app, env):
    """Remove the deploy lock; prints who held it, or ``not locked``."""
    lock = quote(Paths(host, app, env).lock)
    return "\n".join([
        f"if [ -d {lock} ]; then",
        f"  printf 'removed the lock of %s\\n' \"$(cat {lock}/owner 2>/dev/null || echo someone)\"",
        f"  rm -rf {lock}",
        "else echo 'not locked'; fi",
    ])


def pick_release(earlier, to, what):
    """The release to roll back to: the latest earlier one, or the one TO names."""
    if to is None:
        return earlier[0]
    choices = ", ".join(r["commit"][:12] for r in earlier)
    if not to or any(ch not in "0123456789abcdef" for ch in to.lower()):
        raise AetherError(f"--to {to!r} is not a commit; pass one of the kept releases of "
                          f"{what}: {choices}")
    matches = [r for r in earlier if r["commit"].startswith(to.lower())]
    if len(matches) != 1:
        problem = "matches several" if matches else "matches none"
        raise AetherError(f"--to {to!r} {problem} of the kept releases of {what}: {choices}")
    return matches[0]


def kept(state, keep):
    """The earlier releases whose images are kept, newest first, one per commit."""
    live = (state.get("live") or {}).get("commit")
    seen, out = {live}, []
    for entry in state.get("history", []):
        if entry["commit"] not in seen:
            seen.add(entry["commit"])
            out.append(entry)
    return out[:keep]


def next_state(previous, app, env, live):
    """The state after ``live`` becomes the live release."""
    history = list(previous.get("history", []))
    if previous.get("live"):
        history.insert(0, previous["live"])
    return {"app": app.name, "env": env, "live": live, "history": history[:HISTORY]}


def images_to_keep(all_states, keep):
    """Image tags still wanted: every env's live one and its ``keep`` earlier ones."""
    tags = set()
    for state in all_states.values():
        releases = ([state["live"]] if state.get("live") else []) + kept(state, keep)
        tags.update(r["image"] for r in releases if r.get("image"))
    return tags