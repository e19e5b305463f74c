"""What Aether runs on a host, resolved from the inventory alone.

``plan(inventory, host)`` lists the containers, vhosts, databases, Redis
DBs and files of one host, with every value already worked out (OOM scores
this host cannot set are shown as skipped). ``files(inventory, host)`` is
every file Aether pushes there, by absolute server path. Neither touches a
network or a disk.
"""
from . import apps, nginx, release, shared


def _container(name, image, networks, limits, host, ports=(), role="", note=""):
    oom = host.oom_score(limits.oom_score_adj)
    return {
        "name": name, "image": image, "networks": list(networks), "ports": list(ports),
        "oom_score_adj": oom, "oom_score_adj_wanted": limits.oom_score_adj,
        "oom_skipped": oom is None, "mem_limit": limits.mem_limit,
        "restart": limits.restart, "role": role, "note": note,
    }


def containers(inventory, host):
    out = []
    spec = inventory.shared["nginx"]
    ports = [f"{host.nginx.bind}:{host.nginx.http_port}->80"]
    if host.nginx.certificate:
        ports.append(f"{host.nginx.bind}:{host.nginx.https_port}->443")
    out.append(_container(spec.container, spec.image, ["web"], spec.limits, host, ports, "front door"))
    for name in ("postgres", "redis"):
        if name in inventory.shared:
            spec = inventory.shared[name]
            publish = [spec.options["publish"]] if "publish" in spec.options else []
            note = (f"maxmemory {spec.options['maxmemory']} {spec.options['maxmemory_policy']}"
                    if "maxmemory" in spec.options else "every environment's database")
            out.append(_container(spec.container, spec.image, ["backend"], spec.limits,
                                  host, publish, f"shared {name}", note))
    for app_name in host.apps:
        app = inventory.apps[app_name]
        for env in host.environments:
            for service, per_env in app.services.items():
                if env not in per_env:
                    continue
                if service == "web":
                    name = app.stable_name(env)
                    colors = ", ".join(app.color_name(env, c) for c in release.COLORS)
                    out.append(_container(name, f"{app.name}:COMMIT", ["web", "backend"],
                                          per_env[env], host, [f"expose {app.port}"],
                                          f"{app.name} {env}", f"runs as {colors}"))
                else:
                    worker = apps.workers(inventory, app)[service]["command"]
                    out.append(_container(f"{app.name}-{env}-{service}", f"{app.name}:COMMIT",
                                          ["backend"], per_env[env], host, [],
                                          f"{app.name} {env}", "celery " + " ".join(worker[5:8])))
    return out


def vhosts(inventory, host):
    return [{
        "app": app.name, "env": env, "server_names": domains,
        "upstream": f"http://{app.color_name(env, '{blue,green}')}:{app.port}",
        "stable_name": f"{app.stable_name(env)}:{app.port}",
        "file": host.path("nginx", "etc", "conf.d", f"{app.name}-{env}.conf"),
    } for app, env, domains in nginx.vhosts(inventory, host)]


def databases(inventory, host):
    out = []
    for app_name in host.apps:
        app = inventory.apps[app_name]
        for env in host.environments:
            if app.database_name(env):
                out.append({"database": app.database_name(env), "role": app.database_name(env),
                            "app": app.name, "env": env})
    out += [{"database": name, "role": name, "app": "shared", "env": "-"}
            for name in inventory.databases]
    sources = {role: files for _, role, files in shared.roles(inventory, host)}
    for row in out:
        row["connect"] = f"{row['role']} only"
        row["password_from"] = list(sources[row["role"]])
    return out


def redis_dbs(inventory, host):
    out = []
    for app_name in host.apps:
        app = inventory.apps[app_name]
        for env in host.environments:
            for role, db in app.redis.get(env, {}).items():
                out.append({"db": db, "app": app.name, "env": env, "use": role})
    return sorted(out, key=lambda row: row["db"])


def files(inventory, host):
    """{absolute server path: text} of everything Aether pushes to the host."""
    from .deploy import nginx_files_with_live
    relative = nginx_files_with_live(inventory, host)
    if "postgres" in inventory.shared and "redis" in inventory.shared:
        relative.update(shared.files(inventory, host))
    for app_name in host.apps:
        app = inventory.apps[app_name]
        if (apps.TEMPLATES / app.name).is_dir():
            relative.update(apps.compose_files(inventory, host, app))
    return {host.path(path): text for path, text in sorted(relative.items())}


def local_files(inventory, host):
    """{path in the app's repository: text} for developers' machines, never pushed."""
    out = {}
    for app_name in host.apps:
        out.update(apps.local_files(inventory, host, inventory.apps[app_name]))
    return dict(sorted(out.items()))


def release_steps(inventory, host):
    """{app: [step, ...]}: what APP.deploy does, in order."""
    from .deploy import HOOKS
    out = {}
    for app_name in host.apps:
        hooks = app_name in HOOKS
        out[app_name] = (["inspect", "fetch", "build"]
                         + (["check shared services", "migrate", "collectstatic"] if hooks else [])
                         + ["start", "switch", "retire"]
                         + (["restart workers"] if hooks else []) + ["record"])
    return out


def plan(inventory, host):
    return {
        "host": {"name": host.name, "address": host.address, "port": host.port,
                 "user": host.user, "root": host.root,
                 "environments": list(host.environments), "apps": list(host.apps)},
        "containers": containers(inventory, host),
        "vhosts": vhosts(inventory, host),
        "databases": databases(inventory, host),
        "redis": redis_dbs(inventory, host),
        "files": sorted(files(inventory, host)),
        "local_files": sorted(local_files(inventory, host)),
        "releases": release_steps(inventory, host),
        "generated_secrets": sorted({host.path("shared", ".env")} | {
            path for _, _, paths in shared.roles(inventory, host) for path in paths
            if "/shared/secrets/" in path} | {
            shared.fallback_path(host, env) for env in host.environments}),
        "state": {"releases": host.path(".aether", "releases"),
                  "locks": host.path(".aether", "locks"),
                  "audit_log": host.path(".aether", "audit.log")},
    }
