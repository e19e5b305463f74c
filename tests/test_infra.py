"""inv infra.plan and infra.render: everything a host runs, from hosts.yml."""
import json

from conftest import one_line, run


def plan(host):
    result = run("inv", "infra.plan", "--host", host, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class TestPlan:
    def test_vps1_runs_the_contracts_containers_with_its_oom_table(self):
        containers = {c["name"]: c for c in plan("vps1")["containers"]}
        assert containers["shared_postgres"]["oom_score_adj"] == -800
        assert containers["nginx-proxy"]["oom_score_adj"] == -600
        assert containers["shared_redis"]["mem_limit"] == "128m"
        assert containers["helios-prod-web"]["oom_score_adj"] == -200
        assert containers["helios-prod-web"]["restart"] == "always"
        assert containers["aletheia-prod-web"]["mem_limit"] == "2g"
        assert containers["helios-dev-web"]["oom_score_adj"] == 100
        assert "127.0.0.1:5432:5432" in containers["shared_postgres"]["ports"]

    def test_the_sandbox_skips_negative_scores_and_keeps_positive_ones(self):
        containers = {c["name"]: c for c in plan("sandbox")["containers"]}
        assert containers["helios-prod-web"]["oom_skipped"]
        assert containers["helios-prod-web"]["oom_score_adj_wanted"] == -200
        assert containers["helios-dev-web"]["oom_score_adj"] == 100

    def test_vhosts_databases_and_redis_are_resolved(self):
        result = plan("vps1")
        prod = next(v for v in result["vhosts"] if (v["app"], v["env"]) == ("helios", "prod"))
        assert "cabinet-bodin.fr" in prod["server_names"]
        assert {d["database"] for d in result["databases"]} == {
            "aletheia_prod", "aletheia_staging", "aletheia_dev", "umami"}
        assert [r["db"] for r in result["redis"]] == list(range(9))
        assert result["state"]["audit_log"] == "/opt/docker/.aether/audit.log"

    def test_the_table_view_names_each_section(self):
        result = run("inv", "infra.plan", "--host", "vps1")
        for title in ("containers", "vhosts", "databases", "redis", "files"):
            assert title in result.stdout

    def test_no_host_says_which_exist(self):
        result = run("inv", "infra.plan")
        assert result.returncode == 1
        assert one_line(result) == "error: no host given: pass --host with one of vps1, sandbox"


class TestRender:
    def test_every_planned_file_is_written_where_the_server_keeps_it(self, tmp_path):
        files = plan("vps1")["files"]
        result = run("inv", "infra.render", "--host", "vps1", "--out", str(tmp_path))
        assert result.returncode == 0
        for path in files:
            assert (tmp_path / path.lstrip("/")).is_file(), path
        assert (tmp_path / "opt/docker/nginx/etc/conf.d/helios-prod.conf").is_file()
