"""Builders for the shared services: PostgreSQL and Redis on the backend network.

One ``shared_postgres`` holds every environment's database, one
``shared_redis`` every environment's Redis DBs (numbers from hosts.yml).
On the server they live below ROOT/shared, as the Compose project "shared":

    docker-compose.yml   both containers, rendered from hosts.yml
    .env                 POSTGRES_PASSWORD of the superuser (0600)
    secrets/ENV.env      generated secrets the apps of ENV share (0600)
    secrets/APP-ENV.env  generated secrets of one app in ENV (0600)
    secrets/umami.env    the umami role's generated password (0600)

Where a password comes from: an app's secrets, pushed by ``secrets.push``
to ROOT/APP/envs/.env.ENV, win. Until a key is there, a value generated
once on the server in ROOT/shared/secrets/ keeps things working: the apps
read that file first and their own env file after it, so a pushed value
replaces a generated one as soon as it lands. Values are read and set on
the server only: never in an argv, never printed.

Everything here returns text; ``fabfile/shared.py`` runs it.
"""
from .nginx import networks_script
from .remote import command, quote
from .render import render

SUPERUSER = "postgres"
PASSWORD_KEY = "DATABASE_PASSWORD"
# Keys generated on the server until the pushed env files have them: the
# ISR webhook's secret is one per environment (Helios and Aletheia must
# agree on it); the others belong to one app alone.
ENV_KEYS = ("REVALIDATION_SECRET",)
APP_KEYS = {"aletheia": (PASSWORD_KEY, "DJANGO_SECRET_KEY")}


def postgres(inventory):
    return inventory.shared["postgres"]


def redis(inventory):
    return inventory.shared["redis"]


def published_port(inventory):
    """(address, port) PostgreSQL is published on, from ``publish``."""
    address, port, _ = postgres(inventory).options["publish"].rsplit(":", 2)
    return address, int(port)


def files(inventory, host):
    """The shared services' compose file, by path relative to the host root."""
    pg, rd = postgres(inventory), redis(inventory)
    return {"shared/docker-compose.yml": render(
        "shared/docker-compose.yml.j2", host=host, source=inventory.source,
        postgres=pg, redis=rd, superuser=SUPERUSER,
        postgres_oom=host.oom_score(pg.limits.oom_score_adj),
        redis_oom=host.oom_score(rd.limits.oom_score_adj))}


def fallback_path(host, name):
    """ROOT/shared/secrets/NAME.env: secrets generated on the server."""
    return host.path("shared", "secrets", f"{name}.env")


def app_env_path(host, app_name, env):
    """ROOT/APP/envs/.env.ENV: the env file secrets.push writes."""
    return host.path(app_name, "envs", f".env.{env}")


def roles(inventory, host, env=None):
    """(database, role, password files) the host needs, for ENV or all.

    Password files are read in order; the first that has the key wins.
    """
    out = []
    for app_name in host.apps:
        app = inventory.apps[app_name]
        for each in host.environments:
            name = app.database_name(each)
            if name and env in (None, each):
                out.append((name, name, (app_env_path(host, app_name, each),
                                         fallback_path(host, f"{app_name}-{each}"))))
    for name in inventory.databases:
        out.append((name, name, (fallback_path(host, name),)))
    return out


def _random_hex():
    """Shell: 32 random hex characters, from the kernel, on no command line."""
    return "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n')"


def generate_script(path, keys):
    """Create PATH (0600) and add each missing key with a random value.

    Existing values are never changed, so running it again is harmless.
    """
    return "\n".join([
        f"file={quote(path)}",
        'mkdir -p "$(dirname "$file")"; (umask 077; touch "$file"); chmod 0600 "$file"',
        f"for key in {' '.join(quote(k) for k in keys)}; do",
        '  grep -q "^$key=" "$file" || printf "%s=%s\\n" "$key" ' + _random_hex() + ' >> "$file"',
        "done",
    ])


ENV_VALUE = "\n".join([
    "env_value() {  # env_value KEY FILE...: KEY's value from the first file that has it",
    '  local key=$1 file line; shift',
    '  for file in "$@"; do',
    '    line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?$key=" "$file" 2>/dev/null'
    ' | tail -n 1) || continue',
    '    line=${line#*=}',
    "    case $line in",
    # Readers decode escapes inside double quotes; this reader does not, so
    # it refuses them rather than hand the database another password.
    '      \\"*\\\\*\\") echo "$key in $file has a backslash escape: write it in single'
    ' quotes" >&2; return 2 ;;',
    '      \\"*\\") line=${line:1:${#line}-2} ;;',
    "      \\'*\\') line=${line:1:${#line}-2} ;;",
    "    esac",
    '    if [ -n "$line" ]; then printf "%s" "$line"; return 0; fi',
    "  done",
    "  return 1",
    "}",
])


def up_script(inventory, host, install):
    """Networks, the superuser password, the compose file, both containers.

    Refuses to start PostgreSQL when another program already holds its
    published port on the host.
    """
    pg = postgres(inventory)
    address, port = published_port(inventory)
    return "\n".join([
        networks_script(inventory),
        generate_script(host.path("shared", ".env"), ("POSTGRES_PASSWORD",)),
        install,
        f"if [ \"$(docker inspect -f '{{{{.State.Running}}}}' {quote(pg.container)} 2>/dev/null)\""
        " != true ] && (exec 3<>/dev/tcp/" + f"{address}/{port}) 2>/dev/null; then",
        f"  echo '{address}:{port} is already taken on {host.name} by another program' >&2",
        "  exit 66",
        "fi",
        f"cd {quote(host.path('shared'))}",
        "docker compose up -d --wait --wait-timeout 120 2>&1"
        " | grep -v '^ *Container .* \\(Running\\|Healthy\\)$' || true",
        f"for name in {quote(pg.container)} {quote(redis(inventory).container)}; do",
        "  test \"$(docker inspect -f '{{.State.Health.Status}}' \"$name\")\" = healthy",
        "done",
    ])


def status_script(inventory):
    """Sections @@containers, @@databases, @@redis describing both services."""
    pg, rd = postgres(inventory), redis(inventory)
    query = ("SELECT datname, pg_get_userbyid(datdba), pg_size_pretty(pg_database_size(datname)),"
             " has_database_privilege('public', datname, 'CONNECT')"
             " FROM pg_database WHERE NOT datistemplate ORDER BY 1")
    psql = command("docker", "exec", pg.container, "psql", "-X", "-U", SUPERUSER, "-d", "postgres",
                   "-AtF", " ", "-c", query)
    cli = command("docker", "exec", rd.container, "redis-cli")
    return "\n".join([
        "echo @@containers",
        f"for name in {quote(pg.container)} {quote(rd.container)}; do",
        "  docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}"
        "{{.State.Health.Status}}{{else}}-{{end}} {{.Config.Image}} {{.HostConfig.Memory}}"
        " {{.HostConfig.OomScoreAdj}}'"
        ' "$name" 2>/dev/null | sed "s|^/||" || echo "$name missing"',
        "done",
        f"echo '@@ports'; docker port {quote(pg.container)} 2>/dev/null || true",
        f"echo '@@databases'; {psql} 2>/dev/null || true",
        "echo '@@redis'",
        f"{cli} CONFIG GET maxmemory 2>/dev/null | paste -sd ' ' || true",
        f"{cli} CONFIG GET maxmemory-policy 2>/dev/null | paste -sd ' ' || true",
        f"{cli} INFO memory 2>/dev/null | grep '^used_memory_human:' | tr ':' ' ' || true",
        f"{cli} INFO keyspace 2>/dev/null | grep '^db' | tr ':' ' ' || true",
    ])


def _role_sql():
    """psql input making :role own :db, alone, with the password $ROLE_PASSWORD.

    Statements that carry the password are never echoed (terse errors)
    nor written to the server log.
    """
    quiet = "SET log_min_error_statement = panic;\nSET log_statement = 'none';"
    return "\n".join([
        "\\set ON_ERROR_STOP on",
        "\\set VERBOSITY terse",
        quiet,
        "\\getenv pw ROLE_PASSWORD",
        "SELECT format('CREATE ROLE %I', :'role')"
        " WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec",
        "ALTER ROLE :\"role\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
        " PASSWORD :'pw';",
        "\\unset pw",
        "SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')"
        " WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec",
        "ALTER DATABASE :\"db\" OWNER TO :\"role\";",
        # Nobody but the owner (and the superuser) may even connect.
        "REVOKE ALL ON DATABASE :\"db\" FROM PUBLIC;",
        "GRANT CONNECT, TEMPORARY ON DATABASE :\"db\" TO :\"role\";",
        "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;",
        "\\connect :\"db\"",
        quiet,
        "ALTER SCHEMA public OWNER TO :\"role\";",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
        "SELECT 'ready ' || current_database();",
    ])


def db_script(inventory, host, env):
    """Create ENV's databases and roles (and umami's) if missing; idempotent.

    Each role's password is read on the server from its files (see
    ``roles``) and handed to psql through the environment, never argv.
    """
    pg = postgres(inventory)
    lines = [ENV_VALUE, f"mkdir -p -m 0700 {quote(host.path('shared', 'secrets'))}",
             generate_script(fallback_path(host, env), ENV_KEYS)]
    for app_name in host.apps:
        if app_name in APP_KEYS:
            lines.append(generate_script(fallback_path(host, f"{app_name}-{env}"),
                                         APP_KEYS[app_name]))
    for name in inventory.databases:
        lines.append(generate_script(fallback_path(host, name), (PASSWORD_KEY,)))
    lines += [
        f"if [ \"$(docker inspect -f '{{{{.State.Running}}}}' {quote(pg.container)} 2>/dev/null)\""
        " != true ]; then",
        f"  echo '{pg.container} is not running on {host.name}' >&2; exit 66",
        "fi",
        "sql=$(cat <<'AETHER_SQL'",
        _role_sql(),
        "AETHER_SQL",
        ")",
    ]
    for database, role, sources in roles(inventory, host, env):
        psql = command("docker", "exec", "-i", "-e", "ROLE_PASSWORD", pg.container, "psql", "-X",
                       "-q", "-At", "-U", SUPERUSER, "-d", "postgres",
                       "-v", f"db={database}", "-v", f"role={role}")
        lines += [
            f"pw=$(env_value {PASSWORD_KEY} {' '.join(quote(s) for s in sources)})",
            f'printf "%s\\n" "$sql" | ROLE_PASSWORD="$pw" {psql}',
        ]
    lines.append("unset pw")
    return "\n".join(lines)


def role_sources(inventory, host, role):
    """The password files of an app role, or None for an unknown role."""
    return next((sources for _, name, sources in roles(inventory, host) if name == role), None)


def psql_argv(inventory, database, role=None, sql=None, tty=False):
    """docker exec argv running psql on DATABASE, as the superuser or ROLE.

    As ROLE it logs in over TCP with the role's password (PGPASSWORD from
    the environment), exactly as an app does.
    """
    argv = ["docker", "exec", "-i"] + (["-t"] if tty else [])
    if role:
        argv += ["-e", "PGPASSWORD", postgres(inventory).container, "psql", "-X",
                 "-h", "127.0.0.1", "-U", role]
    else:
        argv += [postgres(inventory).container, "psql", "-X", "-U", SUPERUSER]
    argv += ["-d", database, "-v", "ON_ERROR_STOP=1"]
    return argv + (["-c", sql] if sql else [])


def psql_script(inventory, host, database, role=None, sql=None, tty=False):
    psql = command(*psql_argv(inventory, database, role, sql, tty))
    if not role:
        return psql
    sources = " ".join(quote(s) for s in role_sources(inventory, host, role))
    return "\n".join([
        ENV_VALUE,
        f"pw=$(env_value {PASSWORD_KEY} {sources}) ||"
        f" {{ echo 'no password for {role} yet: run shared.db first' >&2; exit 66; }}",
        f'PGPASSWORD="$pw" {psql}',
    ])


def redis_cli_argv(inventory, db, words=(), tty=False):
    return (["docker", "exec", "-i"] + (["-t"] if tty else [])
            + [redis(inventory).container, "redis-cli", "-n", str(int(db)), *words])
