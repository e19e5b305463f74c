"""nginx's rendered files pass nginx -t and docker compose config, and
nginx.push is idempotent and restores the previous files when nginx -t fails."""
import subprocess
from pathlib import Path

import pytest
import yaml

from aether import inventory, nginx
from conftest import ROOT, one_line, run


def render(host, out):
    result = run("inv", "infra.render", "--host", host, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out / inventory.load().host(host).root.lstrip("/")


def self_signed(folder):
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=aether-test", "-keyout", str(folder / "origin.key"),
                    "-out", str(folder / "origin.pem")], check=True, capture_output=True)
    return folder


class TestTheRenderedVhosts:
    def test_helios_prod_lists_every_practice_domain_and_preview(self):
        inv = inventory.load()
        text = nginx.files(inv, inv.host("vps1"))["nginx/etc/conf.d/helios-prod.conf"]
        for domain, _ in inv.apps["helios"].domains["prod"]:
            assert f"        {domain}\n" in text
        assert "include /etc/nginx/aether/live/helios-prod.conf;" in text
        assert "proxy_set_header Host $host;" in text
        assert "listen 443 ssl;" in text and "return 301 https://$host$request_uri;" in text

    def test_the_sandbox_serves_plain_http_without_certificates(self):
        inv = inventory.load()
        text = nginx.files(inv, inv.host("sandbox"))["nginx/etc/conf.d/helios-dev.conf"]
        assert "listen 80;" in text and "ssl" not in text

    def test_a_live_file_names_one_color(self):
        app = inventory.load().apps["helios"]
        assert nginx.live_file(app, "prod", "green").splitlines()[-1] == \
            "set $upstream http://helios-prod-web-green:3000;"


@pytest.mark.parametrize("host", ["vps1", "sandbox"])
class TestNginxAcceptsTheRenderedConfiguration:
    def test_nginx_t_passes(self, host, tmp_path, docker_env):
        root = render(host, tmp_path)
        argv = ["docker", "run", "--rm", "-v", f"{root}/nginx/etc:/etc/nginx/aether:ro"]
        if host == "vps1":
            certs = self_signed(tmp_path / "certs")
            argv += ["-v", f"{certs}/origin.pem:/etc/nginx/tls/certificate.pem:ro",
                     "-v", f"{certs}/origin.key:/etc/nginx/tls/certificate.key:ro"]
        argv += ["nginx:1.27-alpine", "nginx", "-c", nginx.CONFIG, "-t"]
        done = subprocess.run(argv, env=docker_env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "test is successful" in done.stderr

    def test_docker_compose_config_accepts_every_compose_file(self, host, tmp_path, docker_env):
        root = render(host, tmp_path)
        sets = [["nginx/docker-compose.yml"]]
        sets += [["helios/docker-compose.yml", f"helios/docker-compose.{env}.yml"]
                 for env in ("prod", "staging", "dev")]
        for files in sets:
            argv = ["docker", "compose"] + [a for f in files for a in ("-f", str(root / f))]
            env = {**docker_env, "ENVIRONMENT": "prod", "COLOR": "blue", "IMAGE": "helios:0"}
            done = subprocess.run(argv + ["config", "-q"], env=env, capture_output=True, text=True)
            assert done.returncode == 0, (files, done.stderr)


class TestOomScoresFollowTheHost:
    def test_vps1_keeps_negative_scores_and_the_sandbox_leaves_them_out(self):
        inv = inventory.load()
        prod = yaml.safe_load(nginx.files(inv, inv.host("vps1"))["nginx/docker-compose.yml"])
        sandbox = yaml.safe_load(nginx.files(inv, inv.host("sandbox"))["nginx/docker-compose.yml"])
        assert prod["services"]["nginx"]["oom_score_adj"] == -600
        assert "oom_score_adj" not in sandbox["services"]["nginx"]


class TestNginxPush:
    def test_a_second_push_has_nothing_to_change(self, sandbox):
        first = run("fab", "-H", "sandbox", "nginx.push")
        assert first.returncode == 0, first.stdout + first.stderr
        second = run("fab", "-H", "sandbox", "nginx.push")
        assert second.returncode == 0
        assert "nothing to change" in second.stdout

    def test_a_configuration_nginx_refuses_is_rolled_back(self, sandbox, tmp_path):
        conf = Path(sandbox["server_root"]) / "nginx" / "etc" / "conf.d" / "helios-prod.conf"
        before = conf.read_text()
        data = yaml.safe_load((ROOT / "hosts.yml").read_text())
        # A certificate nginx-proxy does not have: nginx -t must refuse it.
        data["hosts"]["sandbox"]["nginx"]["tls"] = {"certificate": "/nonexistent/origin.pem",
                                                    "key": "/nonexistent/origin.key"}
        broken = tmp_path / "hosts.yml"
        broken.write_text(yaml.safe_dump(data, sort_keys=False))
        result = run("fab", "-H", "sandbox", "nginx.push", env={"AETHER_INVENTORY": str(broken)})
        assert result.returncode == 1
        assert "nginx -t refused the new configuration; previous files restored" in result.stderr
        assert one_line(result) == "error: nginx on sandbox kept its previous configuration"
        assert conf.read_text() == before
        assert not list(conf.parent.glob("*.aether-new"))
        assert run("inv", "sandbox.visit", "--env", "prod").returncode == 0

    def test_dry_changes_nothing(self, sandbox):
        result = run("fab", "-H", "sandbox", "nginx.push", "--dry")
        assert result.returncode == 0
        assert "nothing to change" in result.stdout
