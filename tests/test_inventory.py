"""hosts.yml is validated before anything runs, and fails in one line."""
import pytest
import yaml

from aether import inventory
from aether.errors import InventoryError
from conftest import ROOT, one_line, run

GOOD = (ROOT / "hosts.yml").read_text()


def mutated(change):
    data = yaml.safe_load(GOOD)
    change(data)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def error_of(change):
    with pytest.raises(InventoryError) as caught:
        inventory.parse(mutated(change), source="hosts.yml")
    return str(caught.value)


class TestTheProjectInventory:
    def test_it_loads_and_holds_the_contracts_hosts_and_practices(self):
        inv = inventory.parse(GOOD)
        assert set(inv.hosts) == {"vps1", "sandbox"}
        assert inv.environments == ("prod", "staging", "dev")
        assert set(inv.practices) == {"cda", "vsm", "pds", "ths"}
        assert inv.hosts["vps1"].address == "54.36.99.184"

    def test_helios_prod_serves_every_practice_domain_and_preview(self):
        prod = dict(inventory.parse(GOOD).apps["helios"].domains["prod"])
        assert prod["cabinet-dentaire-aubagne.fr"] == "cda"
        assert prod["www.cabinet-dentaire-aubagne.fr"] == "cda"
        assert prod["ths.groupe-suffren.com"] == "ths"

    def test_staging_and_dev_get_per_practice_subdomains(self):
        app = inventory.parse(GOOD).apps["helios"]
        assert ("vsm-staging.groupe-suffren.com", "vsm") in app.domains["staging"]
        assert ("pds-dev.groupe-suffren.com", "pds") in app.domains["dev"]

    def test_the_oom_and_memory_table_matches_the_contract(self):
        inv = inventory.parse(GOOD)
        web = {(a, e): inv.apps[a].services["web"][e] for a in ("aletheia", "helios")
               for e in inv.environments}
        prod = web["aletheia", "prod"]
        assert (prod.oom_score_adj, prod.mem_limit) == (-300, "2g")
        assert (web["helios", "prod"].oom_score_adj, web["helios", "prod"].mem_limit) == (-200, "1g")
        assert (web["helios", "dev"].oom_score_adj, web["helios", "dev"].mem_limit) == (100, "512m")
        assert inv.shared["postgres"].limits.oom_score_adj == -800
        assert inv.shared["redis"].limits.mem_limit == "128m"

    def test_the_redis_map_gives_aletheia_0_to_5_and_helios_6_to_8(self):
        inv = inventory.parse(GOOD)
        dbs = sorted(db for app in inv.apps.values() for roles in app.redis.values()
                     for db in roles.values())
        assert dbs == list(range(9))


class TestABadInventoryNamesFileAndKeyPath:
    @pytest.mark.parametrize("change, expected", [
        (lambda d: d["hosts"]["vps1"]["environments"].append("production"),
         "hosts.yml: hosts.vps1.environments[3]: unknown environment 'production'"),
        (lambda d: d["apps"]["helios"]["services"]["web"].update(qa={"oom_score_adj": 0}),
         "hosts.yml: apps.helios.services.web.qa: unknown environment 'qa'"),
        (lambda d: d["practices"]["pds"]["domains"].append("le-canet.chirurgiens-dentistes.fr"),
         "hosts.yml: practices.pds.domains[1]: domain le-canet.chirurgiens-dentistes.fr is "
         "already used by practices.vsm.domains[0]"),
        (lambda d: d["apps"]["aletheia"]["domains"]["dev"].append("cda.groupe-suffren.com"),
         "hosts.yml: apps.aletheia.domains.dev[1]: domain cda.groupe-suffren.com is already "
         "used by apps.helios.domains.prod[1]"),
        (lambda d: d["apps"]["helios"]["redis"]["dev"].update(isr=3),
         "hosts.yml: apps.aletheia.redis.staging.cache: Redis DB 3 is already used by "
         "apps.helios.redis.dev.isr"),
        (lambda d: d["apps"]["helios"].pop("port"), "hosts.yml: apps.helios.port: missing key"),
        (lambda d: d["hosts"]["vps1"].pop("address"), "hosts.yml: hosts.vps1.address: missing key"),
        (lambda d: d["apps"]["helios"]["services"]["web"]["prod"].update(mem_limit="1GB"),
         "hosts.yml: apps.helios.services.web.prod.mem_limit: '1GB' is not valid"),
        (lambda d: d["practices"]["cda"]["domains"].append("bad domain.fr"),
         "hosts.yml: practices.cda.domains[2]: 'bad domain.fr' is not a valid domain name"),
    ])
    def test_each_mistake_gives_one_precise_line(self, change, expected):
        message = error_of(change)
        assert message.startswith(expected), message
        assert "\n" not in message

    def test_broken_yaml_names_the_line(self):
        with pytest.raises(InventoryError, match=r"^hosts.yml: line \d+: not valid YAML"):
            inventory.parse("environments: [prod\nhosts: {", source="hosts.yml")


class TestNonAsciiDomains:
    def test_a_unicode_domain_is_used_in_its_xn_form_everywhere(self):
        inv = inventory.parse(mutated(
            lambda d: d["practices"]["cda"]["domains"].append("cabinet-zoé.example")))
        assert "xn--cabinet-zo-k7a.example" in inv.practices["cda"].domains
        assert ("xn--cabinet-zo-k7a.example", "cda") in inv.apps["helios"].domains["prod"]
        assert not any("é" in d for d, _ in inv.apps["helios"].domains["prod"])


class TestTheCommandsRefuseABadFile:
    def test_fab_stops_with_one_line_and_exit_1(self, tmp_path):
        bad = tmp_path / "hosts.yml"
        bad.write_text(mutated(lambda d: d["practices"]["vsm"]["domains"].append("cabinet-bodin.fr")))
        result = run("fab", "-H", "sandbox", "helios.deploy", "--env", "prod",
                     env={"AETHER_INVENTORY": str(bad)})
        assert result.returncode == 1
        assert one_line(result) == (f"error: {bad}: practices.pds.domains[0]: domain "
                                    "cabinet-bodin.fr is already used by practices.vsm.domains[1]")
        assert "==>" not in result.stdout   # no step started

    def test_a_missing_file_says_how_to_point_at_one(self, tmp_path):
        result = run("inv", "infra.plan", "--host", "vps1",
                     env={"AETHER_INVENTORY": str(tmp_path / "nope.yml")})
        assert result.returncode == 1
        assert "no such file; set AETHER_INVENTORY" in one_line(result)

    def test_an_unknown_host_lists_the_known_ones(self):
        result = run("fab", "-H", "vps9", "helios.deploy", "--env", "prod")
        assert result.returncode == 1
        assert one_line(result) == ("error: hosts.yml: hosts.vps9: unknown host "
                                    "(known: vps1, sandbox); add it to hosts.yml")
