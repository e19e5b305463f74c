"""secrets.*: env files encrypted with real sops and age, pushed over real SSH.

Builders are tested by exact output. The tasks run as a user runs them, in
a throwaway project (its own hosts.yml, age key and envs/) whose sandbox
host has three more environments: ``fidelity`` for the round trip of
tricky values, ``lacking`` and ``absent`` for the deploy's check.
"""
import dataclasses
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from aether import inventory, secrets
from aether.errors import AetherError, InventoryError
from aether.remote import Outcome
from conftest import ROOT, one_line, run

GOOD = (ROOT / "hosts.yml").read_text()
EXTRA_ENVS = ["fidelity", "lacking", "absent"]
EXAMPLE = (ROOT / "envs" / "helios" / ".env.example").read_text()

# The issue's cases, written the way Aether accepts them, and what every
# reader must get.
TRICKY = [
    ("SMTP_PASSWORD", '"Xy7 #k2Q"', "Xy7 #k2Q"),
    ("DATABASE_URL", "postgres://h:s3=cr3t@db/h?ssl=1", "postgres://h:s3=cr3t@db/h?ssl=1"),
    ("GREETING", "Bonjour et bienvenue au cabinet", "Bonjour et bienvenue au cabinet"),
    ("PRACTICE_NAME", "Cabinet d'Aubagne", "Cabinet d'Aubagne"),
    ("SIGNATURE", "Dr Zoé Müller — 歯科 ✓", "Dr Zoé Müller — 歯科 ✓"),
    ("EMPTY_VALUE", "", ""),
    ("PADDED", '"  two spaces each side  "', "  two spaces each side  "),
    ("DOLLARS", "'pa$$w0rd$HOME'", "pa$$w0rd$HOME"),
    ("QUOTES", "'say \"oui\"'", 'say "oui"'),
    ("APOSTROPHE", "\"l'équipe\"", "l'équipe"),
    ("BACKSLASH", '"C:\\\\cabinet\\\\agenda"', "C:\\cabinet\\agenda"),
    ("NEWLINE", '"line one\\nline two"', "line one\nline two"),
]

# Lines the readers disagree on (or cut short): encrypt refuses each one.
REFUSED = [
    ("SMTP_PASSWORD", "Xy7 #k2Q", "' #' starts a comment in an unquoted value"),
    ("PASSWORD", "pa$word", "Docker Compose expands $ in an unquoted value"),
    ("PASSWORD", '"pa$word"', "Docker Compose expands $ inside double quotes"),
    ("TOKEN", "'a${HOME}b'", "python-dotenv expands ${...} even inside single quotes"),
    ("PATHS", "'C:\\\\agenda'", "python-dotenv reads a backslash before \\ or '"),
    ("QUOTE", '"it\\\'s"', "python-dotenv reads \\' as '"),
    ("PADDED", "sp4ced  ", "readers drop spaces around an unquoted value"),
    ("MULTI", '"first line', "the quote is never closed; a value must fit on one line"),
    ("TRAILER", '"value" # note', "text follows the closing quote"),
]


def host_with_root(root):
    return dataclasses.replace(inventory.parse(GOOD).host("vps1"), root=str(root))


class TestParsingAnEnvFile:
    @pytest.mark.parametrize("key, written, value", TRICKY, ids=[t[0] for t in TRICKY])
    def test_a_value_every_reader_reads_alike_is_kept_as_written(self, key, written, value):
        entry, = secrets.parse(f"{key}={written}\n", "f")
        assert (entry.key, entry.value, entry.text) == (key, value, f"{key}={written}")

    @pytest.mark.parametrize("key, written, problem", REFUSED, ids=[r[2][:30] for r in REFUSED])
    def test_a_value_readers_disagree_on_is_refused_naming_the_key_not_the_value(
            self, key, written, problem):
        with pytest.raises(AetherError) as caught:
            secrets.parse(f"# a comment\n{key}={written}\n", "envs/helios/.env.prod")
        message = str(caught.value)
        assert message.startswith(f"envs/helios/.env.prod:2: {key}: {problem}")
        assert written.strip(" '\"") not in message

    @pytest.mark.parametrize("text, problem", [
        ("A=1\nA=2\n", "f:2: A is already set on line 1; keep one"),
        ("export A=1\n", "f:1: drop 'export'; write KEY=value"),
        ("A = 1\n", "f:1: the text before '=' is not a variable name"),
        ("just words\n", "f:1: no '=' on this line; write KEY=value"),
        ("  A=1\n", "f:1: the line starts with a space"),
        ("A=1\r\n", "f:1: carriage return (a Windows line ending)"),
        ("\ufeffA=1\n", "f:1: the file starts with a byte order mark"),
        ("sops_mac=1\n", "f:1: sops_mac: sops keeps names starting with 'sops_'"),
        ("API_unencrypted=1\n", "f:1: API_unencrypted: sops keeps names"),
        ("A=tab\tthen\x01\n", "f:1: A: the value holds a control character"),
    ])
    def test_a_malformed_line_fails_with_its_line_number(self, text, problem):
        with pytest.raises(AetherError) as caught:
            secrets.parse(text, "f")
        assert str(caught.value).startswith(problem)

    def test_comments_and_blank_lines_are_skipped(self):
        text = "# header\n\nA=1\n#B=2\nC=x#y\n"
        assert [(e.key, e.value, e.line) for e in secrets.parse(text, "f")] == \
            [("A", "1", 3), ("C", "x#y", 5)]

    def test_the_examples_list_the_keys_every_environment_needs(self):
        assert secrets.example_keys("helios", ROOT) == [
            "SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD", "UMAMI_WEBSITE_ID"]
        assert secrets.example_keys("aletheia", ROOT) == [
            "EMAIL_HOST", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "SENTRY_DSN"]
        assert secrets.example_keys("nope", ROOT) is None


CIPHERTEXT = "\n".join([
    "#ENC[AES256_GCM,data:p4y2,iv:x,tag:y,type:comment]",
    "SMTP_HOST=ENC[AES256_GCM,data:cEao,iv:x,tag:y,type:str]",
    "EMPTY=",
    "sops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\n...",
    "sops_age__list_0__map_recipient=age1aaa",
    "sops_age__list_1__map_recipient=age1bbb",
    "sops_mac=ENC[AES256_GCM,data:pi,iv:p8,tag:Mh,type:str]",
    "sops_version=3.11.0",
    "",
])


class TestReadingAnEncryptedFileWithoutItsKey:
    def test_key_names_are_read_in_clear(self):
        assert secrets.encrypted_keys(CIPHERTEXT) == ["SMTP_HOST", "EMPTY"]

    def test_its_recipients_are_listed(self):
        assert secrets.recipients_of(CIPHERTEXT) == ["age1aaa", "age1bbb"]

    @pytest.mark.parametrize("change, problem", [
        (lambda t: t, None),
        (lambda t: t.replace("sops_mac=", "sops_mad="),
         "it is not a sops-encrypted dotenv file (no sops_mac line)"),
        (lambda t: t.replace("SMTP_HOST=ENC[AES256_GCM,data:cEao,iv:x,tag:y,type:str]",
                             "SMTP_HOST=smtp.example"), "SMTP_HOST is not encrypted"),
        (lambda t: t.replace("#ENC[AES", "# clear"), "it holds a comment in clear"),
        (lambda t: "\n".join(l for l in t.split("\n") if "recipient" not in l),
         "it is not encrypted to any age key"),
    ])
    def test_a_plaintext_or_partial_file_is_told_apart(self, change, problem):
        assert secrets.sops_problem(change(CIPHERTEXT)) == problem

    @pytest.mark.parametrize("exited, stderr, start", [
        (51, "MAC mismatch. File has 5E4E, computed 4DFF", "envs/x.enc is corrupt"),
        (25, "Error walking tree: Could not decrypt value", "envs/x.enc is corrupt"),
        (128, "Failed to get the data key required", "no key in k.txt can decrypt envs/x.enc"),
        (1, "invalid dotenv input line: SECRET=hunter2", "envs/x.enc is not a sops-encrypted"),
        (9, "SECRET=hunter2", "sops failed on envs/x.enc (exit status 9)"),
    ])
    def test_a_sops_failure_becomes_one_line_without_sops_output(self, exited, stderr, start):
        message = secrets.sops_failure("envs/x.enc", exited, stderr, "k.txt")
        assert message.startswith(start) and "hunter2" not in message


class TestCommandsAndConfig:
    def test_sops_reads_the_plaintext_on_stdin_and_only_hosts_yml_recipients(self):
        assert secrets.sops_encrypt_argv("sops", ["age1a", "age1b"]) == [
            "sops", "--disable-version-check", "--config", "/dev/null", "--encrypt",
            "--input-type", "dotenv", "--output-type", "dotenv", "--age", "age1a,age1b",
            "/dev/stdin"]
        assert secrets.sops_decrypt_argv("sops") == [
            "sops", "--disable-version-check", "--config", "/dev/null", "--decrypt",
            "--input-type", "dotenv", "--output-type", "dotenv", "/dev/stdin"]

    def test_sops_yaml_is_rendered_from_the_recipients(self):
        text = secrets.sops_config({"ops": "age1a", "vps1": "age1b"})
        assert yaml.safe_load(text) == {"creation_rules": [
            {"path_regex": "^envs/[^/]+/\\.env\\.[a-z0-9-]+(\\.enc)?$", "age": "age1a,age1b"}]}

    def test_the_committed_sops_yaml_matches_hosts_yml(self):
        recipients = inventory.parse(GOOD).secrets.recipients
        assert (ROOT / ".sops.yaml").read_text() == secrets.sops_config(recipients)

    def test_changes_name_keys_only(self):
        before, after = {"A": 1, "B": 2, "C": 3}, {"A": 1, "B": 9, "D": 4}
        assert secrets.describe(*secrets.changes(before, after)) == "added D; changed B; removed C"
        assert secrets.describe(*secrets.changes(before, before)) == "no key changed"

    def test_coverage_puts_the_examples_keys_first_and_finds_what_lacks(self):
        rows, lacking = secrets.coverage(["A", "B"], {"prod": ["A", "B"], "staging": ["A", "X"]})
        assert rows == [("A", True, {"prod": True, "staging": True}),
                        ("B", True, {"prod": True, "staging": False}),
                        ("X", False, {"prod": False, "staging": True})]
        assert lacking == {"staging": ["B"]}


class TestServerScripts:
    def test_the_push_script_takes_the_file_on_stdin_and_renames_it_into_place(self):
        host = inventory.parse(GOOD).host("vps1")
        script = secrets.push_script(host, "helios", "prod", 120)
        assert script.splitlines()[0] == ("dir=/opt/docker/helios/envs "
                                          "target=/opt/docker/helios/envs/.env.prod")
        for line in ("umask 077", 'cat > "$tmp"', 'if [ "$got" -ne 120 ]; then',
                     'chmod 0600 "$tmp"', 'mv -f "$tmp" "$target"'):
            assert line in script.splitlines()

    def test_the_push_script_writes_0600_atomically_and_refuses_a_short_read(self, tmp_path):
        host = host_with_root(tmp_path)
        target = tmp_path / "helios" / "envs" / ".env.prod"
        ok = subprocess.run(["bash", "-c", "set -euo pipefail\n" + secrets.push_script(
            host, "helios", "prod", 5)], input="A=1\n\n", capture_output=True, text=True)
        assert ok.returncode == 0 and ok.stdout.startswith("600 ")
        assert target.read_text() == "A=1\n\n" and oct(target.stat().st_mode & 0o777) == "0o600"
        assert oct(target.parent.stat().st_mode & 0o777) == "0o700"
        short = subprocess.run(["bash", "-c", "set -euo pipefail\n" + secrets.push_script(
            host, "helios", "prod", 99)], input="B=2\n", capture_output=True, text=True)
        assert short.returncode == 65 and "received 4 of 99 bytes" in short.stderr
        assert target.read_text() == "A=1\n\n"
        assert sorted(p.name for p in target.parent.iterdir()) == [".env.prod"]

    def test_digests_on_the_server_match_the_ones_made_here(self, tmp_path):
        host = host_with_root(tmp_path)
        text = "# c\nA=1\nB='x y'\nC=\n"
        (tmp_path / "helios" / "envs").mkdir(parents=True)
        (tmp_path / "helios" / "envs" / ".env.prod").write_text(text)
        out = subprocess.run(["bash", "-c", secrets.digest_script(
            host, [("helios", "prod"), ("helios", "dev")], "salt")],
            capture_output=True, text=True, check=True).stdout
        assert "x y" not in out
        copies = secrets.parse_digests(out)
        keys, whole = secrets.digests(text, "salt")
        assert copies[("helios", "dev")] is None
        prod = copies[("helios", "prod")]
        assert prod.keys == keys and prod.digest == whole

    def test_the_deploy_check_is_read_only_and_names_what_lacks(self, tmp_path):
        host = host_with_root(tmp_path)
        script = secrets.pushed_check_script(host, "helios", "prod", ["A", "B"])
        envs = tmp_path / "helios" / "envs"

        def check():
            done = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
            return done.returncode, done.stdout.strip()
        assert check() == (65, "")
        envs.mkdir(parents=True)
        (envs / ".env.prod").write_text("A=1\nBB=2\n")
        assert check() == (67, "B")
        (envs / ".env.prod").write_text("A=1\nB=\n")
        assert check() == (0, "")

    @pytest.mark.parametrize("exited, stdout, message", [
        (65, "", "helios prod on vps1 has no env file (/opt/docker/helios/envs/.env.prod); push "
                 "it first: fab -H vps1 secrets.push --app helios --env prod"),
        (67, "SMTP_PASSWORD UMAMI_WEBSITE_ID\n",
         "/opt/docker/helios/envs/.env.prod on vps1 lacks SMTP_PASSWORD, UMAMI_WEBSITE_ID "
         "(listed in envs/helios/.env.example); add them with inv secrets.edit helios prod, "
         "then fab -H vps1 secrets.push --app helios --env prod"),
    ])
    def test_the_deploy_check_stops_in_one_line(self, exited, stdout, message):
        host = inventory.parse(GOOD).host("vps1")
        with pytest.raises(AetherError) as caught:
            secrets.pushed_check_result(host, "helios", "prod", Outcome(stdout, "", exited), ["A"])
        assert str(caught.value) == message


class TestTheInventorysSecretsSection:
    def test_it_lists_the_sandbox_key_and_where_it_is(self):
        settings = inventory.parse(GOOD).secrets
        assert list(settings.recipients) == ["sandbox"]
        assert settings.identity == "sandbox/age-key.txt"
        public = subprocess.run(["age-keygen", "-y", str(ROOT / settings.identity)],
                                capture_output=True, text=True, check=True).stdout.strip()
        assert settings.recipients["sandbox"] == public

    @pytest.mark.parametrize("change, expected", [
        (lambda s: s["recipients"].update(ops="age1nope"),
         "hosts.yml: secrets.recipients.ops: 'age1nope' is not valid (an age public key"),
        (lambda s: s["recipients"].update(copy=s["recipients"]["sandbox"]),
         "hosts.yml: secrets.recipients.copy: the same key as secrets.recipients.sandbox"),
        (lambda s: s.update(recipients={}),
         "hosts.yml: secrets.recipients: list at least one age public key"),
        (lambda s: s.pop("recipients"), "hosts.yml: secrets.recipients: missing key"),
        (lambda s: s["recipients"].update({"Bad Name": "x"}),
         "hosts.yml: secrets.recipients.Bad Name: 'Bad Name' is not valid"),
    ])
    def test_a_mistake_names_its_key_path(self, change, expected):
        data = yaml.safe_load(GOOD)
        change(data["secrets"])
        with pytest.raises(InventoryError) as caught:
            inventory.parse(yaml.safe_dump(data, sort_keys=False), source="hosts.yml")
        assert str(caught.value).startswith(expected)

    def test_without_a_secrets_section_the_tasks_say_what_to_add(self, tmp_path):
        data = yaml.safe_load(GOOD)
        data.pop("secrets")
        (tmp_path / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
        result = run("inv", "secrets.diff", env={"AETHER_INVENTORY": str(tmp_path / "hosts.yml")})
        assert result.returncode == 1
        assert one_line(result).endswith("hosts.yml: secrets: missing key; list the age public "
                                         "keys env files are encrypted to under secrets.recipients")


# ---------------------------------------------------------------------------
# The real tools, in a throwaway project.

def age_key(path):
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True,
                          text=True).stdout.strip()


class Project:
    """A project folder of its own: hosts.yml, an age key, envs/, a git repo."""

    def __init__(self, root):
        self.root = root
        self.public = age_key(root / "key.txt")
        data = yaml.safe_load(GOOD)
        data["environments"] += EXTRA_ENVS
        data["hosts"]["sandbox"]["environments"] += EXTRA_ENVS
        data["secrets"] = {"recipients": {"tester": self.public}, "identity": "key.txt"}
        self.save(data)
        (root / "envs" / "helios").mkdir(parents=True)
        (root / "envs" / "helios" / ".env.example").write_text(EXAMPLE)
        shutil.copy(ROOT / ".gitignore", root / ".gitignore")
        (root / ".gitignore").write_text((root / ".gitignore").read_text() + "key*.txt\n")
        subprocess.run(["git", "init", "-q", str(root)], check=True)

    def save(self, data):
        (self.root / "hosts.yml").write_text(yaml.safe_dump(data, allow_unicode=True,
                                                            sort_keys=False))

    def data(self):
        return yaml.safe_load((self.root / "hosts.yml").read_text())

    def run(self, tool, *args, **env):
        return run(tool, *args, env={"AETHER_INVENTORY": str(self.root / "hosts.yml"),
                                     "SOPS_AGE_KEY_FILE": "", **env})

    def plain(self, env, app="helios"):
        return self.root / "envs" / app / f".env.{env}"

    def enc(self, env, app="helios"):
        return self.root / "envs" / app / f".env.{env}.enc"

    def encrypt(self, env, text, app="helios"):
        self.plain(env, app).write_text(text)
        result = self.run("inv", "secrets.encrypt", app, env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result


def example_file(**values):
    keys = secrets.example_keys("helios", ROOT)
    return "".join(f"{k}={values.get(k, 'stand-in-' + k.lower())}\n" for k in keys)


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path)


class TestEncryptAndDecrypt:
    def test_a_round_trip_gives_back_every_line_and_leaves_no_plaintext(self, project):
        text = "# tricky values\n" + "".join(f"{k}={w}\n" for k, w, _ in TRICKY)
        result = project.encrypt("fidelity", text)
        assert "encrypted envs/helios/.env.fidelity.enc: new file, 12 keys" in result.stdout
        assert not project.plain("fidelity").exists()
        cipher = project.enc("fidelity").read_text()
        assert "Xy7" not in cipher and "Aubagne" not in cipher
        assert secrets.recipients_of(cipher) == [project.public]
        decrypted = project.run("inv", "secrets.decrypt", "helios", "fidelity")
        assert decrypted.returncode == 0, decrypted.stderr
        assert project.plain("fidelity").read_text() == text
        assert oct(project.plain("fidelity").stat().st_mode & 0o777) == "0o600"
        assert "SMTP_PASSWORD │ ***" in decrypted.stdout and "Xy7" not in decrypted.stdout

    def test_encrypting_the_same_values_again_changes_nothing(self, project):
        project.encrypt("prod", example_file())
        before = project.enc("prod").read_bytes()
        again = project.encrypt("prod", example_file())
        assert "nothing to change" in again.stdout and project.enc("prod").read_bytes() == before

    def test_a_dry_encrypt_names_the_changed_key_and_writes_nothing(self, project):
        project.encrypt("prod", example_file())
        before = project.enc("prod").read_bytes()
        project.plain("prod").write_text(example_file(SMTP_PASSWORD="n3w-s3cret-value"))
        result = project.run("inv", "secrets.encrypt", "helios", "prod", "--dry")
        assert result.returncode == 0
        assert "would encrypt envs/helios/.env.prod into envs/helios/.env.prod.enc: changed " \
               "SMTP_PASSWORD" in result.stdout
        assert "n3w-s3cret" not in result.stdout
        assert project.enc("prod").read_bytes() == before and project.plain("prod").exists()

    @pytest.mark.parametrize("key, written, problem", REFUSED[:4], ids=[r[0] for r in REFUSED[:4]])
    def test_encrypt_refuses_a_value_readers_would_misread(self, project, key, written, problem):
        project.encrypt("prod", example_file())
        before = project.enc("prod").read_bytes()
        project.plain("prod").write_text(example_file() + f"NEW_{key}={written}\n")
        result = project.run("inv", "secrets.encrypt", "helios", "prod")
        assert result.returncode == 1
        assert one_line(result).startswith(f"error: envs/helios/.env.prod:5: NEW_{key}: {problem}")
        assert written.strip("'\"") not in result.stdout + result.stderr
        assert project.enc("prod").read_bytes() == before and project.plain("prod").exists()

    def test_decrypt_never_overwrites_a_plaintext_that_differs(self, project):
        project.encrypt("prod", example_file())
        project.plain("prod").write_text("SMTP_HOST=edited\n")
        result = project.run("inv", "secrets.decrypt", "helios", "prod")
        assert result.returncode == 1 and one_line(result) == (
            "error: envs/helios/.env.prod exists and differs from envs/helios/.env.prod.enc: "
            "encrypt it (inv secrets.encrypt helios prod) or remove it first")
        assert project.plain("prod").read_text() == "SMTP_HOST=edited\n"


class TestBadInputFailsInOneLine:
    @pytest.fixture
    def encrypted(self, project):
        project.encrypt("prod", example_file())
        return project

    def test_an_unknown_app_or_environment(self, encrypted):
        app = encrypted.run("inv", "secrets.decrypt", "hermes", "prod")
        assert app.returncode == 1 and one_line(app).endswith(
            "apps.hermes: unknown app (known: helios, aletheia)")
        env = encrypted.run("inv", "secrets.encrypt", "helios", "qa")
        assert env.returncode == 1 and one_line(env) == (
            "error: unknown environment 'qa' "
            "(known: prod, staging, dev, fidelity, lacking, absent)")

    def test_a_wrong_key(self, encrypted, tmp_path):
        other = tmp_path / "other-key.txt"
        age_key(other)
        result = encrypted.run("inv", "secrets.decrypt", "helios", "prod",
                               SOPS_AGE_KEY_FILE=str(other))
        assert result.returncode == 1
        assert one_line(result).startswith(
            "error: envs/helios/.env.prod.enc is encrypted to tester "
            f"({encrypted.public[:12]}…), not to the key in {other}")
        assert not encrypted.plain("prod").exists()

    def test_a_missing_key(self, encrypted, tmp_path):
        result = encrypted.run("inv", "secrets.decrypt", "helios", "prod",
                               SOPS_AGE_KEY_FILE=str(tmp_path / "nowhere.txt"))
        assert result.returncode == 1 and one_line(result) == (
            f"error: no age key at {tmp_path / 'nowhere.txt'} (from SOPS_AGE_KEY_FILE); set "
            "SOPS_AGE_KEY_FILE to your age key file")

    def test_a_key_file_holding_only_the_recipient(self, encrypted, tmp_path):
        public_only = tmp_path / "public.txt"
        public_only.write_text(encrypted.public + "\n")
        result = encrypted.run("inv", "secrets.decrypt", "helios", "prod",
                               SOPS_AGE_KEY_FILE=str(public_only))
        assert result.returncode == 1 and "holds no age private key" in one_line(result)

    def test_a_recipient_list_without_our_private_key(self, encrypted, tmp_path):
        data = encrypted.data()
        data["secrets"]["recipients"] = {"someone": age_key(tmp_path / "their-key.txt")}
        encrypted.save(data)
        before = encrypted.enc("prod").read_bytes()
        encrypted.plain("prod").write_text(example_file(SMTP_HOST="changed"))
        for args in (("secrets.encrypt", "helios", "prod"), ("secrets.rotate",)):
            result = encrypted.run("inv", *args)
            assert result.returncode == 1
            assert "you could not decrypt what you encrypt" in one_line(result)
        assert encrypted.enc("prod").read_bytes() == before

    def test_a_corrupt_file(self, encrypted):
        path = encrypted.enc("prod")
        lines = path.read_text().splitlines()
        index = next(i for i, l in enumerate(lines) if l.startswith("SMTP_USER=ENC["))
        data = lines[index].split("data:")[1].split(",")[0]
        other = "B" if data[0] != "B" else "C"
        lines[index] = lines[index].replace(f"data:{data}", f"data:{other}{data[1:]}")
        path.write_text("\n".join(lines) + "\n")
        before = path.read_bytes()
        result = encrypted.run("inv", "secrets.decrypt", "helios", "prod")
        assert result.returncode == 1 and one_line(result) == (
            "error: envs/helios/.env.prod.enc is corrupt: its content does not match its MAC "
            "(changed outside sops); restore it: git checkout -- envs/helios/.env.prod.enc")
        encrypted.plain("prod").write_text(example_file())
        assert encrypted.run("inv", "secrets.encrypt", "helios", "prod").returncode == 1
        assert path.read_bytes() == before and encrypted.plain("prod").exists()

    def test_a_file_that_is_not_encrypted(self, encrypted):
        encrypted.enc("prod").write_text(example_file())
        result = encrypted.run("inv", "secrets.decrypt", "helios", "prod")
        assert result.returncode == 1 and one_line(result) == (
            "error: envs/helios/.env.prod.enc: it is not a sops-encrypted dotenv file (no sops_mac "
            "line); restore it: git checkout -- envs/helios/.env.prod.enc")


class TestEdit:
    def editor(self, project, script):
        path = project.root / "editor.sh"
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)
        return {"EDITOR": str(path), "VISUAL": ""}

    def test_edit_decrypts_to_a_private_file_encrypts_and_removes_it(self, project):
        project.encrypt("prod", example_file())
        log = project.root / "seen.txt"
        env = self.editor(project, (
            f'stat -c "%a %n" "$1" "$(dirname "$1")" > {log}\n'
            'sed -i "s/^SMTP_PASSWORD=.*/SMTP_PASSWORD=\'n3w v4lue\'/" "$1"\n'
            'echo "NEW_KEY=1" >> "$1"\n'))
        result = project.run("inv", "secrets.edit", "helios", "prod", **env)
        assert result.returncode == 0, result.stderr
        assert "encrypted envs/helios/.env.prod.enc: added NEW_KEY; changed SMTP_PASSWORD" \
            in result.stdout and "n3w" not in result.stdout
        file_mode, folder_mode = log.read_text().splitlines()
        assert file_mode.startswith("600 /dev/shm/aether-secrets-")
        assert folder_mode.startswith("700 /dev/shm/aether-secrets-")
        assert not Path(file_mode.split(" ", 1)[1]).parent.exists()
        project.run("inv", "secrets.decrypt", "helios", "prod")
        assert "SMTP_PASSWORD='n3w v4lue'\n" in project.plain("prod").read_text()

    def test_a_new_environment_starts_from_the_example(self, project):
        env = self.editor(project, 'sed -i "s/=$/=set/" "$1"\n')
        result = project.run("inv", "secrets.edit", "helios", "staging", **env)
        assert result.returncode == 0, result.stderr
        assert secrets.encrypted_keys(project.enc("staging").read_text()) == \
            secrets.example_keys("helios", ROOT)

    def test_an_edit_readers_would_misread_changes_nothing(self, project):
        project.encrypt("prod", example_file())
        before = project.enc("prod").read_bytes()
        env = self.editor(project, 'echo "BROKEN=a #b" >> "$1"\n')
        result = project.run("inv", "secrets.edit", "helios", "prod", **env)
        assert result.returncode == 1
        assert one_line(result).startswith("error: envs/helios/.env.prod.enc (edited):5: BROKEN:")
        assert project.enc("prod").read_bytes() == before


class TestDiffRotateCheck:
    def test_diff_shows_a_key_missing_in_staging_and_fails(self, project, figures):
        data = project.data()
        data["environments"] = data["hosts"]["sandbox"]["environments"] = ["prod", "staging", "dev"]
        project.save(data)
        project.encrypt("prod", example_file())
        project.encrypt("dev", example_file() + "DEBUG_TOOLBAR=1\n")
        staging = "".join(l + "\n" for l in example_file().splitlines()
                          if not l.startswith("SMTP_PASSWORD="))
        project.encrypt("staging", staging)
        result = project.run("inv", "secrets.diff", "--app", "helios")
        assert result.returncode == 1
        assert one_line(result) == (
            "error: helios staging lacks SMTP_PASSWORD (add: inv secrets.edit helios staging)")
        assert "stand-in" not in result.stdout
        rows = {line.split("│")[0].strip(): [c.strip() for c in line.split("│")[1:]]
                for line in result.stdout.splitlines() if "│" in line}
        assert rows["SMTP_PASSWORD"] == ["✓", "✓", "missing", "✓"]
        assert rows["DEBUG_TOOLBAR"] == ["not listed", "missing", "missing", "✓"]
        figures("secrets.diff with SMTP_PASSWORD missing in staging:")
        for line in result.stdout.splitlines() + [one_line(result)]:
            figures("  " + line.rstrip())

    def test_rotate_re_encrypts_for_a_new_recipient_once(self, project, tmp_path):
        project.encrypt("prod", example_file())
        project.encrypt("dev", example_file())
        data = project.data()
        second = age_key(tmp_path / "key-ops.txt")
        data["secrets"]["recipients"]["ops"] = second
        project.save(data)
        dry = project.run("inv", "secrets.rotate", "--dry")
        assert dry.returncode == 0 and "would re-encrypt envs/helios/.env.dev.enc" in dry.stdout
        assert secrets.recipients_of(project.enc("prod").read_text()) == [project.public]
        result = project.run("inv", "secrets.rotate")
        assert result.returncode == 0, result.stderr
        assert "re-encrypted 2 file(s), rendered .sops.yaml" in result.stdout
        for env in ("prod", "dev"):
            assert secrets.recipients_of(project.enc(env).read_text()) == [project.public, second]
        as_ops = project.run("inv", "secrets.decrypt", "helios", "prod",
                             SOPS_AGE_KEY_FILE=str(tmp_path / "key-ops.txt"))
        assert as_ops.returncode == 0, as_ops.stderr
        again = project.run("inv", "secrets.rotate")
        assert "nothing to change" in again.stdout

    def test_check_passes_on_a_clean_project_and_finds_each_leak(self, project):
        project.encrypt("prod", example_file(SMTP_PASSWORD="'pa55word-0f-the-practice'"))
        assert project.run("inv", "secrets.rotate").returncode == 0
        subprocess.run(["git", "-C", str(project.root), "add", "."], check=True)
        clean = project.run("inv", "secrets.check")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        (project.root / "README.md").write_text("Log in with\npa55word-0f-the-practice\n")
        project.plain("staging").write_text("A=1\n")
        subprocess.run(["git", "-C", str(project.root), "add", "-f", "envs/helios/.env.staging"],
                       check=True)
        (project.root / ".sops.yaml").write_text("creation_rules: []\n")
        result = project.run("inv", "secrets.check")
        assert result.returncode == 1
        assert one_line(result) == "error: secrets.check found 3 problem(s), listed above"
        assert "envs/helios/.env.staging: a plaintext env file tracked by git" in result.stdout
        assert "README.md:2: holds the value of SMTP_PASSWORD from envs/helios/.env.prod.enc" \
            in result.stdout
        assert ".sops.yaml does not match hosts.yml's recipients" in result.stdout
        assert "pa55word" not in result.stdout + result.stderr


# ---------------------------------------------------------------------------
# Pushing to the sandbox over SSH, and reading the file back as the apps do.

PROBE = """services:
  probe:
    image: node:22-alpine
    network_mode: none
    env_file: [{path}]
    command: ["node", "-e", "process.stdout.write(JSON.stringify(process.env))"]
"""


def readers(env_file, docker_env, work, node=True):
    """{reader: {key: value}, or None where it failed} for each reader of ENV_FILE.

    python-dotenv reads the file itself; Docker Compose parses it as an
    env_file (``config``, whose output writes $ as $$ so it stays a valid
    compose file); Node gets what Compose passes to its container.
    """
    (work / "compose.yml").write_text(PROBE.format(path=json.dumps(str(env_file))))
    compose = ["docker", "compose", "-p", "aether-secrets-probe", "-f", str(work / "compose.yml")]
    out = {"python-dotenv": dotenv_values(env_file), "compose env_file": None}
    config = subprocess.run(compose + ["config", "--format", "json"], env=docker_env,
                            capture_output=True, text=True)
    if config.returncode == 0:
        out["compose env_file"] = {
            k: v.replace("$$", "$")
            for k, v in json.loads(config.stdout)["services"]["probe"]["environment"].items()}
    if node:
        done = subprocess.run(compose + ["run", "--rm", "-T", "probe"], env=docker_env,
                              capture_output=True, text=True, timeout=120)
        out["node"] = json.loads(done.stdout) if done.returncode == 0 else None
    return out


class ProcessWatch:
    """Every command line (and environment) of every process, while it runs."""

    def __init__(self):
        self.lines, self.environs, self._known = set(), [], set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _watch(self):
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if (pid, raw) not in self._known:
                        self._known.add((pid, raw))
                        self.lines.add(raw.replace(b"\0", b" ").decode("utf-8", "replace").strip())
                        self.environs.append(Path(f"/proc/{pid}/environ").read_bytes())
                except OSError:
                    continue
            time.sleep(0.002)


@pytest.fixture(scope="module")
def pushed(sandbox, tmp_path_factory):
    """A project whose helios ``fidelity`` env holds the tricky values."""
    envs = Path(sandbox["server_root"]) / "helios" / "envs"

    def clean():
        for env in EXTRA_ENVS:
            (envs / f".env.{env}").unlink(missing_ok=True)
    clean()
    project = Project(tmp_path_factory.mktemp("pushing"))
    project.encrypt("fidelity", "".join(f"{k}={w}\n" for k, w, _ in TRICKY))
    yield project
    clean()


def push(project, env, *extra):
    return project.run("fab", "-H", "sandbox", "secrets.push", "--app", "helios", "--env", env,
                       *extra)


class TestPushToTheSandbox:
    def test_the_file_lands_0600_owned_by_the_ssh_user(self, pushed, sandbox, figures):
        result = push(pushed, "fidelity")
        assert result.returncode == 0, result.stdout + result.stderr
        server = Path(sandbox["server_root"]) / "helios" / "envs" / ".env.fidelity"
        info = server.stat()
        assert oct(info.st_mode & 0o777) == "0o600" and info.st_uid == 0
        assert oct(server.parent.stat().st_mode & 0o777) == "0o700"
        assert "(600 root:root): new file, 12 keys" in result.stdout
        assert "Xy7" not in result.stdout + result.stderr
        assert not pushed.plain("fidelity").exists()
        figures(f"server file {server}: mode {oct(info.st_mode & 0o777)[2:]}, owner "
                f"uid {info.st_uid} (root, the sandbox's SSH user), folder mode "
                f"{oct(server.parent.stat().st_mode & 0o777)[2:]}")

    def test_every_reader_gets_every_value_as_written(self, pushed, sandbox, docker_env,
                                                      tmp_path, figures):
        server = Path(sandbox["server_root"]) / "helios" / "envs" / ".env.fidelity"
        read = readers(server, docker_env, tmp_path)
        width = max(len(repr(v)) for _, _, v in TRICKY) + 2
        figures("round trip: inv secrets.encrypt -> secrets.decrypt -> fab secrets.push, then "
                "the sandbox's file read by each reader (✓ = exactly the value)")
        figures(f"  {'key':14} {'written as':32} {'value':{width}} python-dotenv  "
                "compose env_file  node")
        failures = []
        for key, written, value in TRICKY:
            marks = []
            for reader, got in read.items():
                marks.append("✓" if got.get(key) == value else repr(got.get(key)))
                if got.get(key) != value:
                    failures.append((reader, key, got.get(key)))
            figures(f"  {key:14} {written:32} {value!r:{width}} {marks[0]:14} {marks[1]:17} "
                    f"{marks[2]}")
        assert failures == []

    def test_lines_encrypt_refuses_are_ones_the_readers_misread(self, docker_env, tmp_path,
                                                                figures):
        figures("refused by secrets.encrypt, and what the readers make of the line "
                "(Node gets what Compose passes):")
        figures(f"  {'written as':18} {'python-dotenv':18} {'compose env_file':20} reason")
        for key, written, problem in REFUSED:
            env_file = tmp_path / "refused.env"
            env_file.write_text(f"{key}={written}\nNEXT=1\n")
            read = readers(env_file, docker_env, tmp_path, node=False)
            got = [repr(values.get(key, "(dropped)")) if values is not None else "(error)"
                   for values in read.values()]
            shown = written.replace(" ", "␠") if written != written.strip() else written
            figures(f"  {shown:18} {got[0]:18} {got[1]:20} {problem}")
            as_written = repr(written.strip("'\""))
            assert got[0] != got[1] or got[0] != as_written, written


    def test_pushing_again_changes_nothing(self, pushed, sandbox):
        server = Path(sandbox["server_root"]) / "helios" / "envs" / ".env.fidelity"
        before = server.stat().st_mtime_ns
        result = push(pushed, "fidelity")
        assert result.returncode == 0 and "1 up to date" in result.stdout
        assert "nothing to change" in result.stdout and server.stat().st_mtime_ns == before

    def test_a_dry_push_names_the_changed_key_and_changes_nothing(self, pushed, sandbox):
        pushed.run("inv", "secrets.decrypt", "helios", "fidelity")
        text = pushed.plain("fidelity").read_text().replace("GREETING=Bonjour", "GREETING=Salut")
        pushed.encrypt("fidelity", text)
        server = Path(sandbox["server_root"]) / "helios" / "envs" / ".env.fidelity"
        before = server.read_bytes()
        result = push(pushed, "fidelity", "--dry")
        assert result.returncode == 0, result.stderr
        assert f"would write {server} (mode 0600): changed GREETING" in result.stdout
        assert "Salut" not in result.stdout and server.read_bytes() == before

    def test_no_value_shows_in_any_process_during_a_push(self, pushed, figures):
        marker = os.urandom(6).hex()
        values = [f"smtp-{marker}", f"p4ss {marker} #x", f"tok3n-{marker}"]
        pushed.encrypt("fidelity", f"SMTP_HOST=smtp-{marker}\nSMTP_PASSWORD=\"p4ss {marker} #x\"\n"
                                   f"SMTP_USER=tok3n-{marker}\nUMAMI_WEBSITE_ID=1\n")
        with ProcessWatch() as watch:
            result = push(pushed, "fidelity")
        assert result.returncode == 0, result.stderr
        assert "changed SMTP_PASSWORD" in result.stdout
        ours = sorted(line for line in watch.lines
                      if any(w in line for w in ("sops", "secrets.push", "age-keygen", ".env."))
                      and "pytest" not in line)
        assert any("--decrypt" in line for line in ours), ours
        assert any('cat > "$tmp"' in line for line in ours), ours
        for value in values:
            assert not any(value in line for line in watch.lines)
            assert not any(value.encode() in environ for environ in watch.environs)
        figures(f"ps during fab secrets.push: {len(watch.lines)} command lines seen, none "
                f"holding a value; the push's own:")
        for line in ours:
            shown = line.replace("\n", "\\n")
            figures("  " + (shown[:150] + " ..." if len(shown) > 150 else shown))

    def test_push_refuses_an_app_the_host_does_not_run(self, pushed):
        result = pushed.run("fab", "-H", "sandbox", "secrets.push", "--app", "hermes")
        assert result.returncode == 1 and one_line(result).endswith(
            "apps.hermes: unknown app (known: helios, aletheia)")


class TestTheDeployChecksThePushedFile:
    def test_a_missing_file_stops_the_deploy_before_anything_runs(self, pushed):
        result = pushed.run("fab", "-H", "sandbox", "helios.deploy", "--env", "absent", "--dry")
        assert result.returncode == 1
        root = inventory.load().host("sandbox").root
        assert one_line(result) == (
            f"error: helios absent on sandbox has no env file ({root}/helios/envs/.env.absent); "
            "push it first: fab -H sandbox secrets.push --app helios --env absent")
        assert "inspect" not in result.stdout

    def test_a_file_lacking_a_key_of_the_example_stops_it(self, pushed):
        lacking = "".join(l + "\n" for l in example_file().splitlines()
                          if not l.startswith("UMAMI_WEBSITE_ID="))
        pushed.encrypt("lacking", lacking)
        pushed_result = push(pushed, "lacking")
        assert pushed_result.returncode == 0
        assert "helios lacking lacks UMAMI_WEBSITE_ID (listed in envs/helios/.env.example)" \
            in pushed_result.stdout
        result = pushed.run("fab", "-H", "sandbox", "helios.deploy", "--env", "lacking", "--dry")
        assert result.returncode == 1
        assert one_line(result).endswith(
            "/helios/envs/.env.lacking on sandbox lacks UMAMI_WEBSITE_ID (listed in "
            "envs/helios/.env.example); add them with inv secrets.edit helios lacking, then "
            "fab -H sandbox secrets.push --app helios --env lacking")

    def test_the_sandbox_has_every_env_file_the_deploys_need(self, sandbox):
        root = Path(sandbox["server_root"])
        for app in ("helios", "aletheia"):
            for env in ("prod", "staging", "dev"):
                path = root / app / "envs" / f".env.{env}"
                assert oct(path.stat().st_mode & 0o777) == "0o600", path
                assert list(dotenv_values(path)) == secrets.example_keys(app, ROOT)


class TestTheRepository:
    def test_its_env_files_pass_the_check(self):
        result = run("inv", "secrets.check")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "6 env files encrypted to sandbox" in result.stdout

    def test_every_environment_has_the_keys_of_its_example(self):
        result = run("inv", "secrets.diff")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "every environment has every key its example lists" in result.stdout
