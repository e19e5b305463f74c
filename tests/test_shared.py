"""shared.*: one PostgreSQL and one Redis, each database open to its own role only."""
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from aether import inventory, shared
from conftest import BIN, ROOT, one_line, run


def fab(*args):
    return run("fab", "-H", "sandbox", *args)


def compose(host_name):
    inv = inventory.load()
    return yaml.safe_load(shared.files(inv, inv.host(host_name))["shared/docker-compose.yml"])


class TestTheComposeFile:
    def test_postgres_18_is_published_on_loopback_only_and_on_the_backend_network(self):
        postgres = compose("vps1")["services"]["postgres"]
        assert postgres["image"] == "postgres:18"
        assert postgres["container_name"] == "shared_postgres"
        assert postgres["ports"] == ["127.0.0.1:5432:5432"]
        assert postgres["networks"] == ["backend"]
        assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql"]

    def test_redis_has_128mb_allkeys_lru_and_no_published_port(self):
        redis = compose("vps1")["services"]["redis"]
        assert redis["image"] == "redis:7-alpine"
        assert redis["command"] == ["redis-server", "--maxmemory", "128mb",
                                    "--maxmemory-policy", "allkeys-lru"]
        assert redis["mem_limit"] == "128m" and "ports" not in redis

    def test_vps1_keeps_the_contracts_oom_scores_and_the_sandbox_leaves_them_out(self):
        assert compose("vps1")["services"]["postgres"]["oom_score_adj"] == -800
        assert compose("vps1")["services"]["redis"]["oom_score_adj"] == -500
        assert "oom_score_adj" not in compose("sandbox")["services"]["postgres"]
        assert "oom_score_adj" not in compose("sandbox")["services"]["redis"]

    def test_docker_compose_config_accepts_it(self, tmp_path, docker_env):
        inv = inventory.load()
        for path, text in shared.files(inv, inv.host("vps1")).items():
            (tmp_path / "docker-compose.yml").write_text(text)
        (tmp_path / ".env").write_text("POSTGRES_PASSWORD=x\n")
        done = subprocess.run(["docker", "compose", "-f", str(tmp_path / "docker-compose.yml"),
                               "config", "-q"], env=docker_env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


class TestPasswordsStayOnTheServer:
    def test_the_role_script_reads_passwords_from_files_and_hands_them_over_by_environment(self):
        inv = inventory.load()
        script = shared.db_script(inv, inv.host("vps1"), "prod")
        assert "env_value DATABASE_PASSWORD /opt/docker/aletheia/envs/.env.prod " \
               "/opt/docker/shared/secrets/aletheia-prod.env" in script
        assert 'ROLE_PASSWORD="$pw" docker exec -i -e ROLE_PASSWORD shared_postgres' in script
        assert "PASSWORD :'pw'" in script and "SET log_min_error_statement = panic;" in script

    def test_a_role_logs_in_with_pgpassword_from_the_environment(self):
        argv = shared.psql_argv(inventory.load(), "aletheia_prod", role="aletheia_dev",
                                sql="select 1")
        assert argv[:6] == ["docker", "exec", "-i", "-e", "PGPASSWORD", "shared_postgres"]
        assert "-h" in argv and "127.0.0.1" in argv


class TestReadingAValueFromEnvFiles:
    def env_value(self, tmp_path, files, key="DATABASE_PASSWORD"):
        paths = []
        for index, text in enumerate(files):
            path = tmp_path / f"{index}.env"
            if text is not None:
                path.write_text(text)
            paths.append(str(path))
        script = shared.ENV_VALUE + '\nenv_value "$@"'
        done = subprocess.run(["bash", "-c", script, "bash", key, *paths], capture_output=True,
                              text=True)
        return done.stdout if done.returncode == 0 else None

    @pytest.mark.parametrize("line, value", [
        ("DATABASE_PASSWORD=plain", "plain"),
        ('DATABASE_PASSWORD="Xy7 #k2Q"', "Xy7 #k2Q"),
        ("DATABASE_PASSWORD='a=b c'", "a=b c"),
        ("export DATABASE_PASSWORD=x1", "x1"),
    ])
    def test_quotes_and_export_are_read_as_dotenv_writes_them(self, tmp_path, line, value):
        assert self.env_value(tmp_path, [f"OTHER=1\n{line}\n"]) == value

    def test_the_pushed_file_wins_over_the_generated_one(self, tmp_path):
        assert self.env_value(tmp_path, ["DATABASE_PASSWORD=pushed\n",
                                         "DATABASE_PASSWORD=generated\n"]) == "pushed"

    def test_a_missing_file_or_an_empty_value_falls_through(self, tmp_path):
        assert self.env_value(tmp_path, [None, "DATABASE_PASSWORD=generated\n"]) == "generated"
        assert self.env_value(tmp_path, ["DATABASE_PASSWORD=\n",
                                         "DATABASE_PASSWORD=generated\n"]) == "generated"
        assert self.env_value(tmp_path, ["OTHER=1\n"]) is None


@pytest.fixture(scope="module")
def services(sandbox):
    up = fab("shared.up")
    assert up.returncode == 0, up.stdout + up.stderr
    for env in ("prod", "dev"):
        db = fab("shared.db", "--env", env)
        assert db.returncode == 0, db.stdout + db.stderr
    return Path(sandbox["server_root"])


def secret(root, name, key="DATABASE_PASSWORD"):
    for line in (root / "shared" / "secrets" / f"{name}.env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{key} missing from {name}.env")


class TestOnTheSandbox:
    def test_a_second_up_has_nothing_to_change(self, services):
        again = fab("shared.up")
        assert again.returncode == 0 and "nothing to change" in again.stdout

    def test_both_run_healthy_and_postgres_answers_on_loopback_only(self, services, docker_env):
        status = fab("shared.status")
        assert "shared_postgres running healthy postgres:18" in status.stdout
        assert "shared_redis running healthy redis:7-alpine 134217728" in status.stdout
        ports = subprocess.run(["docker", "port", "shared_postgres"], env=docker_env,
                               capture_output=True, text=True).stdout.split()
        assert ports == ["5432/tcp", "->", "127.0.0.1:5432"]

    def test_redis_evicts_with_allkeys_lru_under_128mb(self, services):
        out = fab("shared.redis-cli", "--env", "prod", "--command", "CONFIG GET maxmemory*").stdout
        assert "allkeys-lru" in out and "134217728" in out

    def test_each_environment_reaches_its_own_redis_db_from_the_inventory(self, services):
        cache = fab("shared.redis-cli", "--env", "dev", "--use", "cache", "--command",
                    "CLIENT INFO").stdout
        assert " db=5 " in cache
        isr = fab("shared.redis-cli", "--env", "staging", "--app", "helios", "--command",
                  "CLIENT INFO").stdout
        assert " db=7 " in isr

    def test_db_is_idempotent_and_secret_files_are_private(self, services):
        again = fab("shared.db", "--env", "prod")
        assert again.returncode == 0, again.stderr
        assert "aletheia_prod, umami ready" in again.stdout
        for path in (services / "shared" / "secrets").iterdir():
            assert path.stat().st_mode & 0o777 == 0o600, path
        assert (services / "shared" / ".env").stat().st_mode & 0o777 == 0o600

    def test_a_role_reads_its_own_database(self, services):
        own = fab("shared.psql", "--db", "aletheia_dev", "--user", "aletheia_dev",
                  "--command", "select current_user, current_database()")
        assert own.returncode == 0, own.stderr
        assert "aletheia_dev | aletheia_dev" in own.stdout

    def test_aletheia_dev_cannot_even_connect_to_aletheia_prod(self, services, figures):
        other = fab("shared.psql", "--db", "aletheia_prod", "--user", "aletheia_dev",
                    "--command", "select count(*) from websites_website")
        error = [line for line in other.stdout.splitlines() + other.stderr.splitlines()
                 if "FATAL" in line or "DETAIL" in line]
        figures("aletheia_dev reading aletheia_prod: " + " / ".join(e.strip() for e in error))
        assert other.returncode == 1
        said = other.stdout + other.stderr
        assert 'FATAL:  permission denied for database "aletheia_prod"' in said
        assert one_line(other) == "error: psql on aletheia_prod exited with status 2"

    def test_nor_to_umami_or_the_postgres_database(self, services):
        for db in ("umami", "postgres"):
            out = fab("shared.psql", "--db", db, "--user", "aletheia_prod", "--command", "select 1")
            assert "permission denied for database" in out.stdout + out.stderr, db

    def test_no_password_shows_in_output_or_in_any_process_argv(self, services):
        passwords = {secret(services, "aletheia-prod"), secret(services, "umami")}
        seen = set()
        process = subprocess.Popen(
            [str(BIN / "fab"), "-H", "sandbox", "shared.db", "--env", "prod"], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            argv = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            seen.update(p for p in passwords if p in argv)
            time.sleep(0.02)
        output = process.communicate(timeout=60)[0]
        assert process.returncode == 0, output
        assert not seen and not any(p in output for p in passwords)

    def test_an_unknown_database_is_refused_before_ssh(self):
        out = fab("shared.psql", "--db", "aletheia_production", "--command", "select 1")
        assert out.returncode == 1
        assert one_line(out).startswith("error: unknown database 'aletheia_production' on sandbox")


class TestPasswordReader:
    """env_value reads DATABASE_PASSWORD on the server as the apps read it, or refuses."""

    @staticmethod
    def read(tmp_path, text):
        from aether.shared import ENV_VALUE
        path = tmp_path / ".env.prod"
        path.write_text(text)
        return subprocess.run(["bash", "-c", ENV_VALUE + '\nenv_value DATABASE_PASSWORD "$1"',
                               "env_value", str(path)], capture_output=True, text=True)

    def test_quoted_and_plain_values_are_read_without_their_quotes(self, tmp_path):
        assert self.read(tmp_path, 'DATABASE_PASSWORD="Xy7 #k2Q"\n').stdout == "Xy7 #k2Q"
        assert self.read(tmp_path, "DATABASE_PASSWORD='l''x'\n").returncode == 0
        assert self.read(tmp_path, "DATABASE_PASSWORD=plain\n").stdout == "plain"

    def test_a_backslash_escape_in_double_quotes_is_refused_without_the_value(self, tmp_path):
        done = self.read(tmp_path, 'DATABASE_PASSWORD="s3cr\\\\et"\n')
        assert done.returncode == 2 and done.stdout == ""
        assert "backslash escape" in done.stderr and "s3cr" not in done.stderr
