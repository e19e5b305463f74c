"""What an Aletheia release adds to the pipeline: database, static files, workers.

Aletheia is Django behind Gunicorn with three Celery services (celery,
celery-heavy, celery-beat). Around the steps every app shares (see
``aether.deploy``) a release of it also:

  shared      checks shared_postgres, shared_redis and its database exist
  migrate     runs ``manage.py migrate`` in a one-off container of the new
              image, before anything switches: a failing migration stops
              the deploy and the live release keeps serving
  static      runs ``collectstatic`` the same way, into the static volume
  workers     once the new web is live, recreates the workers from the new
              image as the Compose project APP-ENV-workers

Migrations run while the old release still serves, so they must keep the
old code working (add first, remove a release later). Each worker has a
fixed container name, so Docker itself refuses a second celery-beat: the
old one is stopped before its replacement starts.

Everything here returns text or ``release.Step`` values; the pipeline runs them.
"""
from . import apps, shared
from .release import Paths, Step, compose_argv
from .remote import command, quote


def _compose(app, env, color, tag, project_name=None):
    """(export line, docker compose command) for one project of the release."""
    argv = compose_argv(app, env, color)
    if project_name:
        argv[argv.index("-p") + 1] = project_name
    exports = f"export ENVIRONMENT={quote(env)} COLOR={quote(color)} IMAGE={quote(tag)}"
    return exports, command(*argv)


def one_off(app, env, color, tag, argv):
    """Shell lines running ARGV once in a throwaway container of the new image."""
    exports, compose = _compose(app, env, color, tag)
    return "\n".join([exports, f"{compose} run --rm --no-deps -T web {command(*argv)} 2>&1"])


def shared_check_script(inventory, app, env):
    """Exit 66 naming what is missing: a shared container or the database."""
    pg, rd = shared.postgres(inventory), shared.redis(inventory)
    database = app.database_name(env)
    query = command("docker", "exec", pg.container, "psql", "-X", "-U", shared.SUPERUSER, "-d",
                    "postgres", "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
    return "\n".join([
        f"for name in {quote(pg.container)} {quote(rd.container)}; do",
        "  running=$(docker inspect -f '{{.State.Running}}' \"$name\" 2>/dev/null || true)",
        '  if [ "$running" != true ]; then',
        '    echo "$name is not running" >&2; exit 66',
        "  fi",
        "done",
        f"if [ \"$({query})\" != 1 ]; then",
        f"  echo 'database {database} does not exist' >&2; exit 66",
        "fi",
        f"echo 'postgres, redis and {database} ready'",
    ])


def migrate_script(host, app, env, color, tag, install):
    paths = Paths(host, app, env)
    return "\n".join([
        install,
        f"cd {quote(paths.app_dir)}",
        one_off(app, env, color, tag, ["python3", "manage.py", "migrate", "--noinput"]),
    ])


def static_script(host, app, env, color, tag):
    paths = Paths(host, app, env)
    return "\n".join([
        f"cd {quote(paths.app_dir)}",
        one_off(app, env, color, tag, ["python3", "manage.py", "collectstatic", "--noinput"]),
    ])


def workers_project(app, env):
    return f"{app.name}-{env}-workers"


def workers_script(host, app, env, color, tag, timeout=120):
    """Recreate ENV's workers from TAG, as their own Compose project.

    Compose stops each old container before it starts the new one under
    the same fixed name, so there is never a second celery-beat.
    """
    paths = Paths(host, app, env)
    services = [s for s in app.services if s != "web" and env in app.services[s]]
    exports, compose = _compose(app, env, color, tag, workers_project(app, env))
    return "\n".join([
        f"cd {quote(paths.app_dir)}",
        exports,
        f"{compose} up -d --no-build --pull never --wait --wait-timeout {int(timeout)} "
        f"{command(*services)} 2>&1 | grep -v '^ *Container .* \\(Running\\|Healthy\\)$' || true",
        f"for name in {command(*apps.worker_names(app, env))}; do",
        "  state=$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' \"$name\" 2>/dev/null)"
        ' || state="missing"',
        f'  if [ "$state" != "true {tag}" ]; then echo "$name: $state" >&2; exit 73; fi',
        "done",
    ])


def before_start(inventory, host, app, env, color, tag, install):
    """Steps between the build and the start of the new web color."""
    name = app.database_name(env)
    keeps = f"{env} keeps serving its live release"
    return [
        Step(f"check shared services for {env}", shared_check_script(inventory, app, env),
             summary="check shared_postgres, shared_redis and the database",
             failure=f"the shared services or {name} are missing on {host.name}; run: "
                     f"fab -H {host.name} shared.up, then fab -H {host.name} shared.db --env {env}",
             result=f"postgres, redis and {name} ready", changes=False, timeout=60),
        Step(f"migrate {name}", migrate_script(host, app, env, color, tag, install),
             summary=f"write {app.name}'s compose files, run manage.py migrate in a one-off "
                     f"container of {tag}",
             failure=f"the migrations of {tag} failed; nothing switched, {keeps}",
             result="migrations applied", timeout=900),
        Step("collect static files", static_script(host, app, env, color, tag),
             summary=f"run manage.py collectstatic in a one-off container of {tag}",
             failure=f"collectstatic failed for {tag}; nothing switched, {keeps}",
             result=f"collected into {app.name}-{env}-static", timeout=300),
    ]


def after_switch(inventory, host, app, env, color, tag):
    """Steps once the new web serves and the old one is gone: the workers."""
    services = [s for s in app.services if s != "web" and env in app.services[s]]
    return [
        Step(f"restart workers ({', '.join(services)})", workers_script(host, app, env, color, tag),
             summary=f"recreate {', '.join(apps.worker_names(app, env))} from {tag}, "
                     "one at a time, never two celery-beat",
             failure=f"the web of {env} is live on {tag} but its workers did not all start; "
                     f"see fab -H {host.name} {app.name}.logs --env {env} --service celery, "
                     "then deploy again",
             result=f"{len(services)} worker(s) on {tag}", timeout=300),
    ]
