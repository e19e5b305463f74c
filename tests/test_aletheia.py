"""aletheia.deploy on the sandbox: migrations first, the web swapped with no
request lost, workers recreated, and Helios and Aletheia reaching each other.

The tests share one sandbox and run in file order on prod, after the shared
services and Helios prod are up (the module fixture sees to both).
"""
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from aether import apps, inventory, plan
from conftest import GitRemote, one_line, run
from load import Load

ALETHEIA = "aletheia.groupe-suffren.com"
FAILING_MIGRATION = '''from django.db import migrations, models


def fail(apps, schema_editor):
    raise RuntimeError("0002 refuses to run: the practices table is not ready")


class Migration(migrations.Migration):
    dependencies = [("websites", "0001_initial")]
    operations = [
        migrations.AddField("website", "phone", models.CharField(max_length=30, default="")),
        migrations.RunPython(fail),
    ]
'''


def deploy(*args):
    return run("fab", "-H", "sandbox", "aletheia.deploy", *args)


def state(sandbox, app="aletheia", env="prod"):
    path = Path(sandbox["server_root"]) / ".aether" / "releases" / f"{app}-{env}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def docker(docker_env, *argv):
    return subprocess.run(["docker", *argv], env=docker_env, capture_output=True, text=True)


def helios_domains():
    return [d for d, _ in inventory.load().apps["helios"].domains["prod"]]


def through_nginx(sandbox, host, path="/"):
    import http.client
    from urllib.parse import urlsplit
    url = urlsplit(sandbox["http_url"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


class BeatWatch:
    """Counts running celery-beat containers of prod every 100 ms."""

    def __init__(self, docker_env):
        self.env, self.most, self.stop = docker_env, 0, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.stop.is_set():
            names = docker(self.env, "ps", "-q", "--filter", "label=aether.app=aletheia",
                           "--filter", "label=aether.env=prod",
                           "--filter", "label=aether.service=celery-beat").stdout.split()
            self.most = max(self.most, len(names))
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def remote(sandbox):
    return GitRemote(sandbox["git"]["aletheia"])


@pytest.fixture(scope="module")
def live(sandbox, remote):
    """Shared services, prod's database, Helios prod and a first Aletheia release."""
    for args in (("shared.up",), ("shared.db", "--env", "prod"),
                 ("helios.deploy", "--env", "prod", "--ref", "main")):
        done = run("fab", "-H", "sandbox", *args)
        assert done.returncode == 0, done.stdout + done.stderr
    first = deploy("--env", "prod", "--ref", "main")
    assert first.returncode == 0, first.stdout + first.stderr
    return state(sandbox)["live"]


class TestTheComposeFiles:
    def files(self, host="vps1"):
        inv = inventory.load()
        app = inv.apps["aletheia"]
        out = apps.compose_files(inv, inv.host(host), app)
        out.update(apps.local_files(inv, inv.host(host), app))
        return {path: yaml.safe_load(text) for path, text in out.items()}

    def test_prod_has_the_contracts_limits_for_web_and_each_worker(self):
        prod = self.files()["aletheia/docker-compose.prod.yml"]["services"]
        assert prod["web"] == {**prod["web"], "oom_score_adj": -300, "mem_limit": "2g",
                               "restart": "always"}
        assert (prod["celery"]["oom_score_adj"], prod["celery"]["mem_limit"]) == (200, "1g")
        assert prod["celery-beat"]["mem_limit"] == "256m"
        dev = self.files()["aletheia/docker-compose.dev.yml"]["services"]
        assert (dev["web"]["mem_limit"], dev["web"]["restart"]) == ("1g", "unless-stopped")

    def test_each_environment_gets_its_database_and_redis_dbs_from_the_inventory(self):
        for env, broker, cache in (("prod", 0, 1), ("staging", 2, 3), ("dev", 4, 5)):
            web = self.files()[f"aletheia/docker-compose.{env}.yml"]["services"]["web"]
            variables = web["environment"]
            assert variables["DATABASE_NAME"] == variables["DATABASE_USER"] == f"aletheia_{env}"
            assert variables["CELERY_BROKER_URL"] == f"redis://shared_redis:6379/{broker}"
            assert variables["REDIS_CACHE_URL"] == f"redis://shared_redis:6379/{cache}"
            assert variables["HELIOS_REVALIDATE_URL"] == \
                f"http://helios-{env}-web:3000/api/revalidate"
            assert "DATABASE_PASSWORD" not in variables

    def test_workers_sit_on_the_backend_only_under_a_profile(self):
        base = self.files()["aletheia/docker-compose.yml"]["services"]
        assert base["web"]["networks"] == ["web", "backend"]
        for worker in ("celery", "celery-heavy", "celery-beat"):
            assert base[worker]["networks"] == ["backend"]
            assert base[worker]["profiles"] == ["workers"]
        assert "beat" in base["celery-beat"]["command"]

    def test_the_local_override_runs_its_own_postgres_and_redis_on_loopback(self):
        local = self.files()["aletheia/docker-compose.override.yml"]["services"]
        assert local["postgres"]["ports"] == ["127.0.0.1:5433:5432"]
        assert local["redis"]["ports"] == ["127.0.0.1:6379:6379"]
        assert local["web"]["ports"] == ["127.0.0.1:8000:8000"]

    def test_docker_compose_config_accepts_every_set(self, tmp_path, docker_env):
        inv = inventory.load()
        host = inv.host("vps1")
        folder = tmp_path / "aletheia"
        folder.mkdir()
        for path, text in {**apps.compose_files(inv, host, inv.apps["aletheia"]),
                           **apps.local_files(inv, host, inv.apps["aletheia"])}.items():
            (tmp_path / path).write_text(text)
        sets = [["-f", "docker-compose.yml", "-f", f"docker-compose.{env}.yml"]
                for env in ("prod", "staging", "dev")] + [[]]
        for files in sets:
            env = {**docker_env, "ENVIRONMENT": "prod", "COLOR": "blue", "IMAGE": "aletheia:0"}
            if not files:
                env = {k: v for k, v in env.items() if k not in ("ENVIRONMENT", "COLOR", "IMAGE")}
            done = subprocess.run(["docker", "compose", *files, "--profile", "workers", "config"],
                                  cwd=folder, env=env, capture_output=True, text=True)
            assert done.returncode == 0 and "warning" not in done.stderr, (files, done.stderr)
            names = {s["container_name"] for s in yaml.safe_load(done.stdout)["services"].values()}
            assert ("aletheia-prod-web-blue" if files else "aletheia-local-web") in names


class TestThePlan:
    def test_it_lists_the_workers_and_every_file_with_the_shared_services(self):
        inv = inventory.load()
        host = inv.host("vps1")
        names = {c["name"]: c for c in plan.containers(inv, host)}
        assert names["aletheia-prod-celery-heavy"]["mem_limit"] == "2g"
        assert names["aletheia-dev-celery-beat"]["oom_score_adj"] == 600
        files = plan.files(inv, host)
        assert "/opt/docker/shared/docker-compose.yml" in files
        assert "/opt/docker/aletheia/docker-compose.staging.yml" in files
        assert "/opt/docker/aletheia/docker-compose.override.yml" not in files


class TestAFirstRelease:
    def test_the_api_health_and_static_files_answer_through_nginx(self, sandbox, live):
        status, body = through_nginx(sandbox, ALETHEIA, "/api/v1/websites/")
        assert status == 200 and {w["practice"] for w in json.loads(body)["results"]} == {
            "cda", "vsm", "pds", "ths"}
        assert through_nginx(sandbox, ALETHEIA, "/static/site.css")[0] == 200
        status, body = through_nginx(sandbox, ALETHEIA, "/api/health/")
        assert json.loads(body)["commit"] == live["commit"]

    def test_the_workers_run_the_same_image_and_beat_reaches_both_queues(self, sandbox, live):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            beats = json.loads(through_nginx(sandbox, ALETHEIA, "/api/v1/workers/")[1])
            if all(b and b["commit"] == live["commit"] for b in beats.values()):
                break
            time.sleep(1)
        assert all(b and b["commit"] == live["commit"] for b in beats.values()), beats

    def test_a_content_change_reaches_a_helios_practice_page_through_the_webhook(
            self, sandbox, live, docker_env, figures):
        host = "cabinet-dentaire-aubagne.fr"
        through_nginx(sandbox, host)   # Helios has the current content in its cache
        headline = f"Nouveaux horaires {int(time.time())}"
        web = f"aletheia-prod-web-{live['color']}"
        started = time.monotonic()
        saved = docker(docker_env, "exec", web, "python3", "manage.py", "edit_website", "cda",
                       "--headline", headline)
        assert saved.returncode == 0, saved.stderr
        assert "revalidated website:cda (200)" in saved.stderr
        deadline = time.monotonic() + 10
        while headline not in through_nginx(sandbox, host)[1] and time.monotonic() < deadline:
            time.sleep(0.1)
        page = through_nginx(sandbox, host)[1]
        assert headline in page
        figures(f"content saved in Aletheia shown on {host} after "
                f"{time.monotonic() - started:.1f}s (webhook: revalidated website:cda (200))")
        other = through_nginx(sandbox, "cabinet-bodin.fr")[1]
        assert headline not in other


class TestASecondReleaseUnderLoad:
    def test_no_request_fails_and_helios_keeps_reaching_the_api(self, sandbox, remote, live,
                                                                  docker_env, figures):
        new = remote.push("main", {"CHANGELOG": f"release {time.time()}\n"}, "A new release")
        targets = [(ALETHEIA, "/api/v1/websites/"), (ALETHEIA, "/api/health/"),
                   ("cabinet-dentaire-aubagne.fr", "/api/health/aletheia")]
        targets += [(d, "/") for d in helios_domains()[:3]]
        load = Load(sandbox["http_url"], targets, clients=4, seconds=240).start()
        with BeatWatch(docker_env) as beats:
            time.sleep(1.5)
            result = deploy("--env", "prod", "--ref", "main")
            time.sleep(1.5)
        load.stop()
        figures(f"aletheia.deploy under load: {load.report()}; most celery-beat at once: "
                f"{beats.most}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert load.failed == 0, (load.report(), dict(load.failures))
        assert load.total >= 2000, load.report()
        assert load.commits[new[:12]] > 0, "the new commit never answered"
        assert beats.most == 1
        assert state(sandbox)["live"]["commit"] == new

    def test_one_web_color_and_one_set_of_workers_remain(self, docker_env):
        names = docker(docker_env, "ps", "--filter", "label=aether.app=aletheia", "--filter",
                       "label=aether.env=prod", "--format", "{{.Names}}").stdout.split()
        assert sorted(n for n in names if "-web-" not in n) == [
            "aletheia-prod-celery", "aletheia-prod-celery-beat", "aletheia-prod-celery-heavy"]
        assert len([n for n in names if "-web-" in n]) == 1

    def test_the_stable_names_reach_each_other_on_their_networks(self, docker_env, sandbox):
        commit = state(sandbox)["live"]["commit"]
        web = f"aletheia-prod-web-{state(sandbox)['live']['color']}"
        helios = f"helios-prod-web-{state(sandbox, 'helios')['live']['color']}"
        api = docker(docker_env, "exec", helios, "node", "-e",
                     "require('http').get('http://aletheia-prod-web:8000/api/health/', r => "
                     "{let b=''; r.on('data', c => b += c); r.on('end', () => console.log(b))})")
        assert json.loads(api.stdout)["commit"] == commit, api.stderr
        hook = docker(docker_env, "exec", web, "python3", "-c",
                      "import urllib.request; print(urllib.request.urlopen("
                      "'http://helios-prod-web:3000/api/health').status)")
        assert hook.stdout.strip() == "200", hook.stderr


class TestHeliosSwapsUnderAletheia:
    def test_aletheia_keeps_reaching_the_webhook_host_across_a_helios_deploy(
            self, sandbox, live, figures):
        load = Load(sandbox["http_url"], [(ALETHEIA, "/api/health/helios/")], clients=1,
                    seconds=240).start()
        time.sleep(1)
        result = run("fab", "-H", "sandbox", "helios.deploy", "--env", "prod", "--ref", "main")
        time.sleep(1)
        load.stop()
        figures(f"aletheia -> helios-prod-web:3000 during helios.deploy: {load.report()}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert load.failed == 0 and load.total > 100, load.report()


class TestAFailingMigration:
    def test_it_stops_the_deploy_before_any_switch_and_prod_keeps_serving(
            self, sandbox, remote, live, docker_env, figures):
        before = state(sandbox)["live"]
        remote.push("bad-migration",
                    {"websites/migrations/0002_phone.py": FAILING_MIGRATION}, "A failing migration")
        load = Load(sandbox["http_url"], [(ALETHEIA, "/api/v1/websites/"),
                                          ("cabinet-dentaire-aubagne.fr", "/")],
                    clients=1, seconds=240).start()
        result = deploy("--env", "prod", "--ref", "bad-migration")
        load.stop()
        figures("failing migration: " + one_line(result))
        figures(f"failing migration: statuses during it {dict(load.statuses)}, "
                f"errors {dict(load.errors)}")
        assert result.returncode == 1
        assert "the migrations of aletheia:" in one_line(result)
        assert "nothing switched, prod keeps serving its live release" in one_line(result)
        assert "RuntimeError: 0002 refuses to run" in result.stderr
        assert set(load.statuses) == {200} and not load.errors, load.report()
        assert state(sandbox)["live"] == before
        names = docker(docker_env, "ps", "-a", "--filter", "label=aether.app=aletheia",
                       "--filter", "label=aether.env=prod", "--format", "{{.Names}}").stdout
        assert f"aletheia-prod-web-{before['color']}" in names and "-run-" not in names
        columns = docker(docker_env, "exec", "shared_postgres", "psql", "-U", "postgres", "-d",
                         "aletheia_prod", "-Atc", "select column_name from information_schema"
                         ".columns where table_name = 'websites_website'").stdout.split()
        assert "phone" not in columns   # the migration's transaction was rolled back


class TestRollbackDryAndLocks:
    def test_dry_changes_nothing(self, sandbox, live):
        before = state(sandbox)
        result = deploy("--env", "prod", "--ref", "main", "--dry")
        assert result.returncode == 0, result.stderr
        assert "run manage.py migrate in a one-off container of aletheia:" in result.stdout
        assert "postgres, redis and aletheia_prod ready" in result.stdout
        assert state(sandbox) == before

    def test_a_held_lock_stops_a_deploy_until_unlock(self, sandbox, live):
        lock = Path(sandbox["server_root"]) / ".aether" / "locks" / "aletheia-prod"
        lock.mkdir(parents=True)
        (lock / "owner").write_text("someone@laptop since 2026-12-04T01:00:00Z (main)\n")
        result = deploy("--env", "prod", "--ref", "main")
        assert result.returncode == 1 and "aletheia.unlock --env prod" in one_line(result)
        assert run("fab", "-H", "sandbox", "aletheia.unlock", "--env", "prod").returncode == 0
        assert not lock.exists()

    def test_rollback_puts_the_previous_release_back_with_its_workers(self, sandbox, live,
                                                                      docker_env):
        current = state(sandbox)
        previous = current["history"][0]["commit"]
        result = run("fab", "-H", "sandbox", "aletheia.rollback", "--env", "prod")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "cached" in result.stdout and "fetch" not in result.stdout
        assert state(sandbox)["live"]["commit"] == previous
        image = docker(docker_env, "inspect", "-f", "{{.Config.Image}}",
                       "aletheia-prod-celery-beat").stdout.strip()
        assert image == f"aletheia:{previous[:12]}"
