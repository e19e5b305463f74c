"""The inventory: hosts.yml loaded once, validated, and turned into objects.

Every task reads the same inventory, from ``hosts.yml`` at the project root
or from the file named by AETHER_INVENTORY. Validation happens before any
task touches a server: a bad file stops with one line naming the file and
the key path (``hosts.yml: apps.helios.port: missing key``).

Terms used throughout Aether:

environment
    prod, staging or dev: one copy of every app, isolated on the same host
    by Compose project names, databases and Redis DB numbers.
app
    aletheia (Django + Celery) or helios (the Next.js practice sites).
practice
    a dental practice with a short code (cda, vsm, pds, ths), its own
    production domains, and preview/staging/dev subdomains.
stable name
    ``APP-ENV-web``: the DNS name other containers use on the Docker
    networks (the ISR webhook, the websites API). It always reaches the
    live release, whichever color that is.
"""
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import idna
import yaml

from .errors import InventoryError

PROJECT = Path(__file__).resolve().parent.parent
_MISSING = object()
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_MEMORY = re.compile(r"^[0-9]+[kmg]$")
_RESTART = ("always", "unless-stopped", "on-failure", "no")
# An age public key: "age1" and 58 characters of the bech32 alphabet.
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


def inventory_path():
    """hosts.yml at the project root, unless AETHER_INVENTORY names another."""
    return Path(os.environ.get("AETHER_INVENTORY") or PROJECT / "hosts.yml")


class _Node:
    """A value read from the YAML file, with the key path that led to it."""

    def __init__(self, source, path, value):
        self.source, self.path, self.value = source, path, value

    def fail(self, problem):
        raise InventoryError(self.source, self.path, problem)

    def _child(self, key):
        joiner = f"[{key}]" if isinstance(key, int) else f".{key}" if self.path else key
        return _Node(self.source, f"{self.path}{joiner}", None)

    def get(self, key, default=_MISSING):
        mapping = self.mapping()
        child = self._child(key)
        if key not in mapping:
            if default is _MISSING:
                child.fail("missing key")
            child.value = default
            return child
        child.value = mapping[key]
        return child

    def mapping(self):
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, found {type(self.value).__name__}")
        return self.value

    def items(self):
        return [(key, self.get(key)) for key in self.mapping()]

    def list(self):
        if not isinstance(self.value, list):
            self.fail(f"expected a list, found {type(self.value).__name__}")
        out = []
        for index, value in enumerate(self.value):
            child = self._child(index)
            child.value = value
            out.append(child)
        return out

    def text(self, pattern=None, hint=""):
        if not isinstance(self.value, str) or not self.value.strip():
            self.fail("expected a non-empty string")
        if pattern and not re.match(pattern, self.value):
            self.fail(f"{self.value!r} is not valid{hint}")
        return self.value

    def integer(self, low=None, high=None):
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self.fail(f"expected a whole number, found {self.value!r}")
        if (low is not None and self.value < low) or (high is not None and self.value > high):
            self.fail(f"{self.value} is outside {low}..{high}")
        return self.value

    def boolean(self):
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, found {self.value!r}")
        return self.value

    def choice(self, allowed, what):
        if self.value not in allowed:
            self.fail(f"unknown {what} {self.value!r} (known: {', '.join(allowed)})")
        return self.value


def ascii_domain(node):
    """A domain in the ASCII (xn--) form nginx and certificates use."""
    name = node.text()
    try:
        return idna.encode(name.strip().rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as error:
        node.fail(f"{name!r} is not a valid domain name ({error})")


@dataclass(frozen=True)
class Limits:
    """How Docker treats one container: OOM priority, memory cap, restart."""

    oom_score_adj: int
    mem_limit: str | None
    restart: str


@dataclass(frozen=True)
class Practice:
    code: str
    name: str
    domains: tuple       # production domains, ASCII form, www included
    local: str | None    # the developer's /etc/hosts name for this practice


@dataclass(frozen=True)
class App:
    name: str
    port: int
    health: str
    repo: str
    target: str
    services: dict       # service -> {environment -> Limits}
    domains: dict        # environment -> ((domain, practice code or None), ...)
    redis: dict          # environment -> {role -> DB number}
    database: str | None  # pattern, "{env}" replaced: aletheia_{env}

    def stable_name(self, env):
        """The DNS name that always reaches the live web container."""
        return f"{self.name}-{env}-web"

    def color_name(self, env, color):
        """The container name of one release color: helios-prod-web-blue."""
        return f"{self.name}-{env}-web-{color}"

    def database_name(self, env):
        return self.database.format(env=env) if self.database else None


@dataclass(frozen=True)
class Shared:
    name: str
    container: str
    image: str
    limits: Limits
    options: dict


@dataclass(frozen=True)
class Nginx:
    bind: str
    http_port: int
    https_port: int | None
    certificate: str | None
    certificate_key: str | None
    rate: str
    burst: int


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int
    user: str
    known_hosts: str
    identity: str | None
    root: str
    environments: tuple
    apps: tuple
    negative_oom: bool    # False where the engine cannot lower OOM scores
    nginx: Nginx
    repos: dict           # app -> git URL the server fetches from
    drain_seconds: int
    keep_releases: int
    sandbox: bool

    def repo(self, app):
        return self.repos.get(app.name, app.repo)

    def oom_score(self, value):
        """The OOM score to set here: None where the engine cannot lower it."""
        return None if value < 0 and not self.negative_oom else value

    def path(self, *parts):
        """An absolute path below the host's Aether root (/opt/docker)."""
        return "/".join([self.root.rstrip("/"), *parts])


@dataclass(frozen=True)
class Secrets:
    """Who can read the encrypted env files, and which key this checkout uses.

    ``recipients`` maps a name (a person, a server, the sandbox) to an age
    public key; every ``envs/APP/.env.ENV.enc`` is encrypted to all of them.
    ``identity`` is the private key file to decrypt with when
    SOPS_AGE_KEY_FILE is not set, relative to the inventory's folder.
    """

    recipients: dict
    identity: str | None


@dataclass(frozen=True)
class Inventory:
    source: str
    environments: tuple
    networks: tuple
    apps: dict
    practices: dict
    shared: dict
    hosts: dict
    databases: tuple = field(default=())
    secrets: Secrets | None = None

    def host(self, name):
        if name not in self.hosts:
            known = ", ".join(self.hosts)
            raise InventoryError(self.source, f"hosts.{name}",
                                 f"unknown host (known: {known}); add it to hosts.yml")
        return self.hosts[name]

    def app(self, name):
        if name not in self.apps:
            raise InventoryError(self.source, f"apps.{name}",
                                 f"unknown app (known: {', '.join(self.apps)})")
        return self.apps[name]


def _limits(node):
    return Limits(
        oom_score_adj=node.get("oom_score_adj").integer(-1000, 1000),
        mem_limit=_memory(node.get("mem_limit", None)),
        restart=node.get("restart", "unless-stopped").choice(_RESTART, "restart policy"),
    )


def _memory(node):
    if node.value is None:
        return None
    return node.text(r"^[0-9]+[kmg]$", " (write it like 512m or 2g)")


def _per_env(node, environments):
    """A mapping keyed by environment; an unknown key fails with its path."""
    out = {}
    for env, child in node.items():
        child.path = f"{node.path}.{env}"
        _Node(node.source, child.path, env).choice(environments, "environment")
        out[env] = child
    return out


def _practices(node, origins):
    practices = {}
    for code, spec in node.items():
        _Node(node.source, spec.path, code).text(r"^[a-z0-9]+$",
                                                 " (a practice code is short lowercase)")
        local = spec.get("local", None)
        practices[code] = Practice(
            code=code,
            name=spec.get("name").text(),
            domains=tuple(_claim(d, ascii_domain(d), origins) for d in spec.get("domains").list()),
            local=ascii_domain(local) if local.value is not None else None,
        )
    return practices


def _app_domains(node, environments, practices, origins):
    """Each environment's domains; "{practice}" in a pattern fans out.

    ``origins`` maps each domain to the key path that first claimed it, so
    a domain claimed twice is reported at both places.
    """
    out = {}
    for env, patterns in _per_env(node, environments).items():
        resolved = []
        for pattern in patterns.list():
            if pattern.value == "practice-domains":
                for practice in practices.values():
                    for index, domain in enumerate(practice.domains):
                        where = f"practices.{practice.code}.domains[{index}]"
                        resolved.append((_claim(pattern, domain, origins, where), practice.code))
            elif isinstance(pattern.value, str) and "{practice}" in pattern.value:
                for code in practices:
                    one = _Node(pattern.source, pattern.path, pattern.value.replace("{practice}", code))
                    resolved.append((_claim(pattern, ascii_domain(one), origins), code))
            else:
                resolved.append((_claim(pattern, ascii_domain(pattern), origins), None))
        out[env] = tuple(resolved)
    return out


def _claim(node, domain, origins, where=None):
    """Record that ``where`` serves ``domain``; fail if another key does."""
    where = where or node.path
    if domain in origins and origins[domain] != where:
        raise InventoryError(node.source, where,
                             f"domain {domain} is already used by {origins[domain]}")
    origins.setdefault(domain, where)
    return domain


def _apps(node, environments, practices, origins):
    apps = {}
    for name, spec in node.items():
        _Node(node.source, spec.path, name).text(_NAME.pattern, " (lowercase letters, digits, -)")
        services = {}
        for service, per_env in spec.get("services").items():
            services[service] = {env: _limits(limits)
                                 for env, limits in _per_env(per_env, environments).items()}
        redis = {env: {role: db.integer(0, 15) for role, db in roles.items()}
                 for env, roles in _per_env(spec.get("redis", {}), environments).items()}
        database = spec.get("database", None)
        apps[name] = App(
            name=name,
            port=spec.get("port").integer(1, 65535),
            health=spec.get("health").text(r"^/", " (a path starting with /)"),
            repo=spec.get("repo").text(),
            target=spec.get("target", "production").text(),
            services=services,
            domains=_app_domains(spec.get("domains"), environments, practices, origins),
            redis=redis,
            database=database.text() if database.value is not None else None,
        )
        if "web" not in services:
            spec.get("services").get("web")
    return apps


def _shared(node):
    shared = {}
    for name, spec in node.items():
        options = {k: v.value for k, v in spec.items()
                   if k not in ("container", "image", "oom_score_adj", "mem_limit", "restart")}
        shared[name] = Shared(
            name=name,
            container=spec.get("container").text(),
            image=spec.get("image").text(),
            limits=_limits(spec),
            options=options,
        )
    return shared


def _nginx(node):
    https = node.get("https_port", None)
    tls = node.get("tls", None)
    certificate = key = None
    if tls.value is not None:
        certificate = tls.get("certificate").text(r"^/", " (an absolute path)")
        key = tls.get("key").text(r"^/", " (an absolute path)")
        https.value = https.value or 443
    return Nginx(
        bind=node.get("bind", "0.0.0.0").text(),
        http_port=node.get("http_port", 80).integer(1, 65535),
        https_port=https.integer(1, 65535) if https.value is not None else None,
        certificate=certificate,
        certificate_key=key,
        rate=node.get("rate", "10r/s").text(r"^[0-9]+r/[sm]$", " (write it like 10r/s)"),
        burst=node.get("burst", 20).integer(0, 100000),
    )


def _host(name, spec, environments, apps, layout_root):
    sandbox = spec.get("sandbox", False).boolean()
    if sandbox:
        from .sandbox import Paths
        paths = Paths.from_environment()
        fixed = {"known_hosts": str(paths.known_hosts), "identity": str(paths.client_key),
                 "root": str(paths.server_root / layout_root.lstrip("/"))}
        repos = {app: str(paths.git / f"{app}.git") for app in apps}
    else:
        identity = spec.get("identity", None)
        known_hosts = spec.get("known_hosts", "~/.ssh/known_hosts").text()
        fixed = {"known_hosts": os.path.expanduser(known_hosts),
                 "identity": os.path.expanduser(identity.text()) if identity.value else None,
                 "root": spec.get("root", layout_root).text(r"^/", " (an absolute path)")}
        repos = {app: url.text() for app, url in spec.get("repos", {}).items()}
    host_envs = tuple(e.choice(environments, "environment") for e in spec.get("environments").list())
    host_apps = tuple(a.choice(tuple(apps), "app") for a in spec.get("apps").list())
    return Host(
        name=name,
        address=spec.get("address").text(),
        port=spec.get("port", 22).integer(1, 65535),
        user=spec.get("user").text(),
        environments=host_envs,
        apps=host_apps,
        negative_oom=spec.get("negative_oom", True).boolean(),
        nginx=_nginx(spec.get("nginx")),
        repos=repos,
        drain_seconds=spec.get("drain_seconds", 3).integer(0, 300),
        keep_releases=spec.get("keep_releases", 3).integer(1, 50),
        sandbox=sandbox,
        **fixed,
    )


def _secrets(node):
    if node.value is None:
        return None
    recipients, owners = {}, {}
    for name, key in node.get("recipients").items():
        _Node(node.source, key.path, name).text(_NAME.pattern, " (lowercase letters, digits, -)")
        public = key.text(_AGE_RECIPIENT.pattern, " (an age public key: age1 and 58 more "
                          "characters, as age-keygen -y prints it)")
        if public in owners:
            key.fail(f"the same key as {owners[public]}")
        owners[public] = key.path
        recipients[name] = public
    if not recipients:
        node.get("recipients").fail("list at least one age public key")
    identity = node.get("identity", None)
    return Secrets(recipients=recipients,
                   identity=identity.text() if identity.value is not None else None)


def _check_redis(inventory_node, apps):
    """No Redis DB may serve two apps or environments."""
    dbs = {}
    for app in apps.values():
        for env, roles in app.redis.items():
            for role, db in roles.items():
                where = f"apps.{app.name}.redis.{env}.{role}"
                if db in dbs:
                    raise InventoryError(inventory_node.source, where,
                                         f"Redis DB {db} is already used by {dbs[db]}")
                dbs[db] = where


def parse(text, source="hosts.yml"):
    """Validate inventory YAML text and return an Inventory."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", error)
        raise InventoryError(source, where, f"not valid YAML ({problem})") from None
    root = _Node(source, "", data)
    environments = tuple(e.text(_NAME.pattern) for e in root.get("environments").list())
    layout_root = root.get("layout").get("root").text(r"^/", " (an absolute path)")
    origins = {}
    practices = _practices(root.get("practices"), origins)
    apps = _apps(root.get("apps"), environments, practices, origins)
    _check_redis(root, apps)
    hosts = {name: _host(name, spec, environments, apps, layout_root)
             for name, spec in root.get("hosts").items()}
    databases = tuple(d.text(r"^[a-z][a-z0-9_]*$", " (lowercase letters, digits, _)")
                      for d in root.get("databases", []).list())
    return Inventory(
        source=source,
        environments=environments,
        networks=tuple(n.text(_NAME.pattern) for n in root.get("networks").list()),
        apps=apps,
        practices=practices,
        shared=_shared(root.get("shared")),
        hosts=hosts,
        databases=databases,
        secrets=_secrets(root.get("secrets", None)),
    )


@lru_cache(maxsize=4)
def _load(path, mtime):
    return parse(Path(path).read_text(encoding="utf-8"), source=_display(path))


def _display(path):
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load(path=None):
    """Load and validate the inventory once; later calls reuse it."""
    path = Path(path or inventory_path())
    if not path.is_file():
        raise InventoryError(str(path), "",
                             "no such file; set AETHER_INVENTORY or run from the project root")
    return _load(str(path.resolve()), path.stat().st_mtime_ns)
