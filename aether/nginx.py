"""Builders for nginx-proxy: its compose file, nginx.conf, vhosts, live files.

On the server everything sits below ROOT/nginx:

    docker-compose.yml          the nginx-proxy container
    etc/nginx.conf              mounted at /etc/nginx/aether
    etc/conf.d/APP-ENV.conf     one vhost per app and environment
    etc/live/APP-ENV.conf       the live release color, written by deploys

Vhosts never name a color themselves: they include their live file, so a
deploy switches traffic by rewriting one line, testing and reloading.
"""
from .remote import quote
from .render import render

CONFIG = "/etc/nginx/aether/nginx.conf"   # where the container sees etc/
REFUSED = ('  printf "nginx -t refused the new configuration; previous files restored:\\n%s\\n"'
           ' "$out" >&2')


def vhosts(inventory, host):
    """(app, env, domains) for every vhost this host serves."""
    out = []
    for name in host.apps:
        app = inventory.apps[name]
        for env in host.environments:
            domains = [domain for domain, _ in app.domains.get(env, ())]
            if domains:
                out.append((app, env, domains))
    return out


def files(inventory, host):
    """Every nginx file Aether pushes, by path relative to the host root."""
    spec = inventory.shared["nginx"]
    common = {"host": host, "source": inventory.source}
    out = {
        "nginx/docker-compose.yml": render(
            "nginx/docker-compose.yml.j2", spec=spec, stable_names=stable_names(inventory, host),
            oom_score_adj=host.oom_score(spec.limits.oom_score_adj), **common),
        "nginx/etc/nginx.conf": render("nginx/nginx.conf.j2", **common),
    }
    for app, env, domains in vhosts(inventory, host):
        out[f"nginx/etc/conf.d/{app.name}-{env}.conf"] = render(
            "nginx/vhost.conf.j2", app=app, env=env, domains=domains, **common)
    return out


def stable_names(inventory, host):
    """APP-ENV-web of every vhost: the names nginx-proxy answers on the web network."""
    return [app.stable_name(env) for app, env, _ in vhosts(inventory, host)]


def live_path(app, env):
    return f"nginx/etc/live/{app.name}-{env}.conf"


def live_file(app, env, color):
    """The one-line include that points a vhost at a release color."""
    return render("nginx/live.conf.j2", app=app, env=env, color=color)


def test_and_reload(host):
    """Shell lines: test the configuration in the container, then reload.

    Expects ``restore`` to be a shell function that puts the previous files
    back; it runs when the test fails, so a bad config never goes live.
    """
    container = quote("nginx-proxy")
    return "\n".join([
        f"if ! out=$(docker exec {container} nginx -c {CONFIG} -t 2>&1); then",
        "  restore",
        REFUSED,
        "  exit 65",
        "fi",
        f"docker exec {container} nginx -c {CONFIG} -s reload",
    ])


def running(container):
    """A command printing ``true`` when the container runs."""
    return f"docker inspect -f '{{{{.State.Running}}}}' {quote(container)} 2>/dev/null"


def networks_script(inventory):
    """Create the shared Docker networks that do not exist yet."""
    names = " ".join(quote(n) for n in inventory.networks)
    return "\n".join([
        f"for net in {names}; do",
        '  docker network inspect "$net" >/dev/null 2>&1 && continue',
        '  docker network create "$net" >/dev/null && echo "created network $net"',
        "done",
    ])


def check_script(inventory, host):
    """Shell lines testing etc/ with nginx -t, in the running container if any."""
    spec = inventory.shared["nginx"]
    etc = quote(host.path("nginx", "etc"))
    return "\n".join([
        f"if [ \"$({running(spec.container)})\" = true ]; then",
        test_and_reload(host),
        "else",
        f"  if ! out=$(docker run --rm -v {etc}:/etc/nginx/aether:ro {quote(spec.image)}"
        f" nginx -c {CONFIG} -t 2>&1); then",
        "    restore",
        "  " + REFUSED,
        "    exit 65",
        "  fi",
        "fi",
    ])


def up_script(inventory, host, install):
    """Networks, then the pushed files (``install``), then nginx-proxy itself."""
    return "\n".join([
        networks_script(inventory),
        install,
        f"cd {quote(host.path('nginx'))}",
        "docker compose up -d --wait --wait-timeout 60 2>&1"
        " | grep -v '^ *Container .* Running$' || true",
        f"test \"$({running(inventory.shared['nginx'].container)})\" = true",
    ])
