"""helios.deploy on the sandbox: real fab, real SSH, real Docker, real nginx.

The tests share one sandbox and run in file order: prod is deployed first,
then redeployed under load; dev takes the failure cases, staging the lock.
"""
import json
import re
import time
from pathlib import Path

import pytest

from aether import inventory
from conftest import one_line, run
from load import Load

SERVER_JS = "server.js"


def deploy(env, ref, *extra):
    return run("fab", "-H", "sandbox", "helios.deploy", "--env", env, "--ref", ref, *extra)


def visit(env):
    result = run("inv", "sandbox.visit", "--env", env, "--json")
    return json.loads(result.stdout)


def state(sandbox, env):
    path = Path(sandbox["server_root"]) / ".aether" / "releases" / f"helios-{env}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def audit_lines(sandbox):
    path = Path(sandbox["server_root"]) / ".aether" / "audit.log"
    return path.read_text().splitlines() if path.exists() else []


def domains(env):
    return [d for d, _ in inventory.load().apps["helios"].domains[env]]


@pytest.fixture(scope="module")
def main_commit(helios_remote):
    return helios_remote.head("main")


class TestAFirstDeploy:
    def test_it_exits_0_and_records_the_commit_live(self, sandbox, main_commit, figures):
        result = deploy("prod", "main")
        assert result.returncode == 0, result.stdout + result.stderr
        assert state(sandbox, "prod")["live"]["commit"] == main_commit
        counts = re.search(r"(\d+) SSH connection\(s\), (\d+) remote command\(s\)", result.stdout)
        assert counts and counts.group(1) == "1"
        figures(f"helios.deploy: {counts.group(1)} SSH connection, {counts.group(2)} remote commands")

    def test_every_practice_domain_answers_through_nginx_with_that_commit(self, main_commit):
        pages = visit("prod")
        assert len(pages) == len(domains("prod")) == 9
        for page in pages:
            assert page["status"] == 200, page
            assert page["practice"] == page["expected"], page
            assert page["commit"] == main_commit, page

    def test_the_stable_name_reaches_the_live_release(self, docker_env, main_commit):
        import subprocess
        out = subprocess.run(
            ["docker", "exec", "nginx-proxy", "curl", "-fsS", "http://helios-prod-web:3000/api/health"],
            env=docker_env, capture_output=True, text=True, check=True).stdout
        assert json.loads(out)["commit"] == main_commit


class TestASecondDeployUnderLoad:
    def test_no_request_fails_while_the_new_commit_takes_over(self, sandbox, helios_remote, figures):
        new = helios_remote.push("main", {"CHANGELOG": f"release {time.time()}\n"}, "A new release")
        load = Load(sandbox["http_url"], domains("prod"), clients=2, seconds=240).start()
        time.sleep(1.5)
        result = deploy("prod", "main")
        time.sleep(1.5)
        load.stop()
        figures(f"zero downtime: {load.report()}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert load.failed == 0, load.report()
        assert load.total >= 2000, load.report()
        assert load.commits[new[:12]] > 0, "the new commit never answered"
        assert state(sandbox, "prod")["live"]["commit"] == new

    def test_the_old_color_is_gone_and_one_release_runs(self, docker_env):
        import subprocess
        names = subprocess.run(["docker", "ps", "--filter", "label=aether.env=prod",
                                "--filter", "label=aether.app=helios", "--format", "{{.Names}}"],
                               env=docker_env, capture_output=True, text=True).stdout.split()
        assert len(names) == 1, names

    def test_rollback_puts_the_previous_commit_back_without_building(self, sandbox, main_commit):
        before = state(sandbox, "prod")["live"]["commit"]
        result = run("fab", "-H", "sandbox", "helios.rollback", "--env", "prod")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "fetch" not in result.stdout and "cached" in result.stdout
        assert state(sandbox, "prod")["live"]["commit"] == main_commit
        assert {p["commit"] for p in visit("prod")} == {main_commit}
        assert state(sandbox, "prod")["history"][0]["commit"] == before


class TestBadRefs:
    def test_an_injection_ref_runs_nothing_and_fails_as_unknown(self, sandbox, tmp_path):
        marker = Path("/tmp/pwned")
        marker.unlink(missing_ok=True)
        result = deploy("prod", "$(touch${IFS}/tmp/pwned)")
        assert result.returncode == 1
        assert one_line(result).startswith("error: unknown ref '$(touch${IFS}/tmp/pwned)'")
        assert not marker.exists()
        assert not list(Path(sandbox["server_root"]).rglob("pwned"))

    def test_a_ref_that_looks_like_an_option_is_refused_before_ssh(self):
        result = deploy("prod", "--upload-pack=touch /tmp/x")
        assert result.returncode == 1
        assert one_line(result) == ("error: --ref '--upload-pack=touch /tmp/x' starts with '-': "
                                    "pass a branch, tag or commit, e.g. --ref main")
        assert "==>" not in result.stdout

    def test_an_unknown_environment_is_refused_before_ssh(self):
        result = deploy("production", "main")
        assert result.returncode == 1
        assert "unknown environment 'production' for sandbox" in one_line(result)


class TestFailuresLeaveTheLiveReleaseServing:
    def test_a_release_that_never_gets_healthy_is_removed(self, sandbox, helios_remote, docker_env):
        assert deploy("dev", "main").returncode == 0
        live = state(sandbox, "dev")["live"]
        crashing = helios_remote.read(SERVER_JS).replace(
            "server.listen(", "process.exit(3); server.listen(")
        helios_remote.push("broken-health", {SERVER_JS: crashing}, "Crash at start")
        load = Load(sandbox["http_url"], domains("dev"), clients=1, seconds=240).start()
        result = deploy("dev", "broken-health")
        load.stop()
        assert result.returncode == 1
        assert "did not become healthy; dev keeps serving its live release" in one_line(result)
        assert state(sandbox, "dev")["live"] == live
        assert load.failed == 0 and set(load.commits) == {live["commit"][:12]}, load.report()
        import subprocess
        names = subprocess.run(["docker", "ps", "-a", "--filter", "label=aether.env=dev",
                                "--filter", "label=aether.app=helios",
                                "--format", "{{.Names}}"], env=docker_env,
                               capture_output=True, text=True).stdout.split()
        assert names == [f"helios-dev-web-{live['color']}"]
        assert json.loads(audit_lines(sandbox)[-1])["result"] == "failed"

    def test_a_failed_build_changes_nothing_live(self, sandbox, helios_remote):
        live = state(sandbox, "dev")["live"]
        helios_remote.push("broken-build", {"Dockerfile": "FROM node:22-alpine AS production\n"
                                                          "RUN exit 9\n"}, "Broken build")
        result = deploy("dev", "broken-build")
        assert result.returncode == 1
        assert "building helios:" in one_line(result) and "dev keeps serving" in one_line(result)
        assert state(sandbox, "dev")["live"] == live
        assert {p["status"] for p in visit("dev")} == {200}


class TestLocksAndDryRuns:
    def test_a_held_lock_stops_a_second_deploy_and_unlock_clears_it(self, sandbox):
        lock = Path(sandbox["server_root"]) / ".aether" / "locks" / "helios-staging"
        lock.mkdir(parents=True)
        (lock / "owner").write_text("someone@laptop since 2026-12-04T01:00:00Z (main)\n")
        result = deploy("staging", "main")
        assert result.returncode == 1
        assert one_line(result) == (
            "error: helios staging on sandbox is locked by someone@laptop since "
            "2026-12-04T01:00:00Z (main); if that deploy is dead, run: "
            "fab -H sandbox helios.unlock --env staging")
        assert run("fab", "-H", "sandbox", "helios.unlock", "--env", "staging").returncode == 0
        assert not lock.exists()

    def test_dry_shows_the_steps_and_changes_nothing(self, sandbox, docker_env):
        import subprocess
        before = (state(sandbox, "staging"), len(audit_lines(sandbox)))
        containers = subprocess.run(["docker", "ps", "-aq"], env=docker_env,
                                    capture_output=True, text=True).stdout
        result = deploy("staging", "main", "--dry")
        assert result.returncode == 0, result.stderr
        assert "would: point nginx/etc/live/helios-staging.conf at" in result.stdout
        assert "dry run, nothing changed" in result.stdout
        assert (state(sandbox, "staging"), len(audit_lines(sandbox))) == before
        assert subprocess.run(["docker", "ps", "-aq"], env=docker_env, capture_output=True,
                              text=True).stdout == containers
        lock = Path(sandbox["server_root"]) / ".aether" / "locks" / "helios-staging"
        assert not lock.exists()

    def test_deploying_the_live_commit_again_is_safe(self, sandbox):
        assert deploy("staging", "main").returncode == 0
        first = state(sandbox, "staging")["live"]
        result = deploy("staging", "main")
        assert result.returncode == 0, result.stderr
        again = state(sandbox, "staging")["live"]
        assert again["commit"] == first["commit"] and again["color"] != first["color"]
        assert "cached" in result.stdout


class TestInterruptedDeploys:
    def test_the_color_nginx_serves_wins_over_a_stale_state(self, sandbox, figures):
        path = Path(sandbox["server_root"]) / ".aether" / "releases" / "helios-prod.json"
        recorded = json.loads(path.read_text())
        serving = recorded["live"]["color"]
        other = "green" if serving == "blue" else "blue"
        stale = dict(recorded, live=dict(recorded["live"], color=other))
        path.write_text(json.dumps(stale))   # as if a deploy died between switch and record
        load = Load(sandbox["http_url"], domains("prod"), clients=2, seconds=240).start()
        result = deploy("prod", "main")
        load.stop()
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"nginx serves {serving}, not the recorded" in result.stdout
        assert load.failed == 0, load.report()
        assert state(sandbox, "prod")["live"]["color"] != serving


def interrupt_deploy(env, marker, delay):
    """Run a deploy and press Ctrl-C DELAY seconds after MARKER is printed."""
    import signal
    import subprocess
    from conftest import BIN, ROOT
    process = subprocess.Popen([str(BIN / "fab"), "-H", "sandbox", "helios.deploy", "--env", env,
                                "--ref", "main"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            time.sleep(delay)
            process.send_signal(signal.SIGINT)
    return process.wait(), "".join(lines)


class TestCtrlC:
    def test_before_the_switch_it_stops_removes_the_new_color_and_unlocks(self, sandbox,
                                                                          docker_env):
        import subprocess
        assert deploy("staging", "main").returncode == 0
        live = state(sandbox, "staging")["live"]
        code, out = interrupt_deploy("staging", "==> start", 0.3)
        assert code == 1
        assert "interrupted: stopped before switch nginx" in out
        assert state(sandbox, "staging")["live"] == live
        assert not (Path(sandbox["server_root"]) / ".aether/locks/helios-staging").exists()
        names = subprocess.run(["docker", "ps", "-a", "--filter", "label=aether.env=staging",
                                "--filter", "label=aether.app=helios", "--format", "{{.Names}}"],
                               env=docker_env, capture_output=True, text=True).stdout.split()
        assert names == [f"helios-staging-web-{live['color']}"]

    def test_during_the_switch_it_finishes_the_deploy_so_the_records_tell_the_truth(self,
                                                                                   sandbox):
        before = state(sandbox, "staging")["live"]["color"]
        code, out = interrupt_deploy("staging", "==> switch", 0.2)
        assert code == 0, out
        now = state(sandbox, "staging")["live"]["color"]
        live_file = Path(sandbox["server_root"]) / "nginx/etc/live/helios-staging.conf"
        assert now != before and f"-web-{now}:" in live_file.read_text()


class TestLongRequests:
    def test_a_request_longer_than_the_drain_finishes_across_a_deploy(self, sandbox):
        import http.client
        import threading
        result = {}

        def slow():
            connection = http.client.HTTPConnection("127.0.0.1", 8080, timeout=60)
            connection.request("GET", "/api/slow?ms=15000",
                               headers={"Host": "cda-staging.groupe-suffren.com"})
            response = connection.getresponse()
            result["status"] = response.status
            response.read()

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(1)
        assert deploy("staging", "main").returncode == 0
        thread.join(60)
        assert result.get("status") == 200, result


class TestRollbackChoices:
    def test_an_ambiguous_or_empty_to_is_refused(self, sandbox):
        result = run("fab", "-H", "sandbox", "helios.rollback", "--env", "staging", "--to", "")
        assert result.returncode == 1
        assert "--to '' is not a commit" in one_line(result)
