"""The apps' compose files: values from hosts.yml reach them literally."""
import yaml

from aether import apps, inventory
from test_inventory import mutated


class TestInventoryValuesInComposeFiles:
    def test_a_dollar_in_a_practice_name_is_not_interpolated_by_compose(self):
        inv = inventory.parse(mutated(lambda d: d["practices"]["pds"].update(
            name="Cabinet $HOME `id` ${PWD:?} 'Bodin'")))
        host = inv.host("sandbox")
        text = apps.compose_files(inv, host, inv.apps["helios"], envs=("dev",))[
            "helios/docker-compose.dev.yml"]
        value = yaml.safe_load(text)["services"]["web"]["environment"]["HELIOS_PRACTICES"]
        assert "Cabinet $$HOME `id` $${PWD:?} 'Bodin'" in value

    def test_compose_reads_it_back_as_written(self, tmp_path, docker_env):
        import subprocess
        inv = inventory.parse(mutated(lambda d: d["practices"]["pds"].update(
            name="Cabinet $HOME ${PWD:?}")))
        files = apps.compose_files(inv, inv.host("sandbox"), inv.apps["helios"], envs=("dev",))
        for path, text in files.items():
            (tmp_path / path.split("/")[-1]).write_text(text)
        # What the container itself receives, not Compose's re-escaped view.
        done = subprocess.run(
            ["docker", "compose", "-p", "aether-test-dollar",
             "-f", str(tmp_path / "docker-compose.yml"),
             "-f", str(tmp_path / "docker-compose.dev.yml"),
             "run", "--rm", "--no-deps", "--entrypoint", "printenv", "web", "HELIOS_PRACTICES"],
            env={**docker_env, "ENVIRONMENT": "dev", "COLOR": "test", "IMAGE": "node:22-alpine"},
            capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        import json
        practices = json.loads(done.stdout)
        assert practices["pds-dev.groupe-suffren.com"]["name"] == "Cabinet $HOME ${PWD:?}"
