"""Builders for the apps' compose files (base plus one override per env).

The pattern follows the contract: ``docker-compose.yml`` holds what every
environment shares, ``docker-compose.ENV.yml`` the limits and settings of
one environment, and ``docker-compose.override.yml`` (Aletheia) a
developer's machine; the server never reads the last one. Release colors
and images are passed as variables when a release starts (see
``aether.release``), so the files do not change from one deploy to the next.

Every template gets the same context: the app, the environment, the limits
of each of its services (OOM scores this host cannot set are None), its
Redis DBs and database, the shared services and the stable names.
"""
from .errors import InventoryError
from .render import TEMPLATES, render

# What each worker service runs; which ones exist, and their limits, come
# from hosts.yml (apps.APP.services). Celery runs as a module: the image
# has no celery script on its PATH.
_CELERY = ["python3", "-m", "celery", "-A", "aletheia"]
WORKERS = {
    "celery": {"command": _CELERY + ["worker", "-Q", "default", "-n", "default@%h",
                                     "--concurrency", "2", "-l", "info"],
               "stop_grace": "60s"},
    "celery-heavy": {"command": _CELERY + ["worker", "-Q", "heavy", "-n", "heavy@%h",
                                           "--concurrency", "1", "-l", "info"],
                     "stop_grace": "120s"},
    "celery-beat": {"command": _CELERY + ["beat", "-s", "/tmp/celerybeat-schedule", "-l", "info"],
                    "stop_grace": "10s"},
}
LOCAL_OVERRIDE = "docker-compose.override.yml"


def practices_map(inventory, app, env):
    """{domain: {"code", "name"}} for the Host header lookup of ENV."""
    return {domain: {"code": code, "name": inventory.practices[code].name}
            for domain, code in app.domains.get(env, ()) if code}


def workers(inventory, app):
    """{service: {"command", "stop_grace"}} of the app's services besides web."""
    out = {}
    for service in app.services:
        if service == "web":
            continue
        if service not in WORKERS:
            raise InventoryError(inventory.source, f"apps.{app.name}.services.{service}",
                                 f"Aether does not know what {service} runs "
                                 f"(known: {', '.join(WORKERS)})")
        out[service] = WORKERS[service]
    return out


def worker_names(app, env):
    """Container names of the app's workers in ENV: aletheia-prod-celery ..."""
    return [f"{app.name}-{env}-{service}" for service in app.services
            if service != "web" and env in app.services[service]]


class _Limits:
    """One service's limits as this host applies them."""

    def __init__(self, limits, host):
        self.restart = limits.restart
        self.mem_limit = limits.mem_limit
        self.oom_score_adj = host.oom_score(limits.oom_score_adj)


def allowed_hosts(app, env):
    """Host headers the app answers: its domains, its stable name, loopback."""
    return [d for d, _ in app.domains.get(env, ())] + [app.stable_name(env), "127.0.0.1",
                                                       "localhost"]


def _env_context(inventory, host, app, env):
    services = {name: _Limits(per_env[env], host)
                for name, per_env in app.services.items() if env in per_env}
    web = services["web"]
    helios = inventory.apps.get("helios")
    return {
        "env": env, "services": services, "limits": web, "oom_score_adj": web.oom_score_adj,
        "redis": app.redis.get(env, {}), "redis_dbs": app.redis.get(env, {}),
        "practices": practices_map(inventory, app, env),
        "database": app.database_name(env), "allowed_hosts": allowed_hosts(app, env),
        "helios_web": helios.stable_name(env) if helios else "",
    }


def _common(inventory, host, app):
    return {"host": host, "app": app, "source": inventory.source,
            "workers": workers(inventory, app),
            "shared_postgres": inventory.shared.get("postgres"),
            "shared_redis": inventory.shared.get("redis")}


def compose_files(inventory, host, app, envs=None):
    """The files pushed to ROOT/APP: the base and each environment's override."""
    common = _common(inventory, host, app)
    out = {f"{app.name}/docker-compose.yml": render(f"{app.name}/docker-compose.yml.j2", **common)}
    for env in envs or host.environments:
        context = {**common, **_env_context(inventory, host, app, env)}
        out[f"{app.name}/docker-compose.{env}.yml"] = render(
            f"{app.name}/docker-compose.env.yml.j2", **context)
    return out


def local_files(inventory, host, app):
    """A developer's override, if the app has one: {APP/docker-compose.override.yml: text}."""
    template = f"{app.name}/{LOCAL_OVERRIDE}.j2"
    if not (TEMPLATES / template).is_file():
        return {}
    return {f"{app.name}/{LOCAL_OVERRIDE}": render(template, **_common(inventory, host, app))}
