"""Builders for the apps' compose files (base plus one override per env).

The pattern follows the contract: ``docker-compose.yml`` holds what every
environment shares, ``docker-compose.ENV.yml`` the limits and settings of
one environment. Release colors and images are passed as variables when a
release starts (see ``aether.release``), so the files do not change from
one deploy to the next.
"""
from .render import TEMPLATES, render


def practices_map(inventory, app, env):
    """{domain: {"code", "name"}} for the Host header lookup of ENV."""
    return {domain: {"code": code, "name": inventory.practices[code].name}
            for domain, code in app.domains.get(env, ()) if code}


def compose_files(inventory, host, app, envs=None):
    common = {"host": host, "app": app, "source": inventory.source}
    out = {f"{app.name}/docker-compose.yml": render(f"{app.name}/docker-compose.yml.j2", **common)}
    for env in envs or host.environments:
        limits = app.services["web"][env]
        out[f"{app.name}/docker-compose.{env}.yml"] = render(
            f"{app.name}/docker-compose.env.yml.j2", env=env, limits=limits,
            oom_score_adj=host.oom_score(limits.oom_score_adj),
            redis=app.redis.get(env, {}), practices=practices_map(inventory, app, env),
            **common)
    return out
