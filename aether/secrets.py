"""Builders for secrets: env files encrypted with SOPS and age, then pushed.

Each app keeps one file per environment, ``envs/APP/.env.ENV.enc``,
encrypted to every age public key in hosts.yml (``secrets.recipients``),
and ``envs/APP/.env.example`` listing the keys every environment needs. A
server gets the decrypted file at ``ROOT/APP/envs/.env.ENV``, mode 0600,
which the app's compose file reads as its ``env_file``.

A value must reach the app exactly as written, whoever reads the file:
python-dotenv, Docker Compose's env_file, and Node through the
container's environment. They disagree on some quotes, escapes, ``$`` and
``#``, so ``parse`` accepts only lines they all read alike and refuses the
others, naming the key. sops keeps the text of each line as it is.

Nothing here decrypts, runs or prints a value: messages name keys only,
and the server scripts take the file on standard input.
"""
import hashlib
import re
from dataclasses import dataclass, field

from .errors import AetherError
from .remote import quote

SOPS_CONFIG = ".sops.yaml"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_RECIPIENT = re.compile(r"^sops_age__list_\d+__map_recipient=(.*)$")
# Escapes inside double quotes that python-dotenv and Docker Compose both
# decode; any other backslash stays as written in both.
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", '"': '"'}
# Exit statuses of the deploy's check of the pushed file.
_MISSING, _UNREADABLE, _LACKING = 65, 66, 67


@dataclass(frozen=True)
class Entry:
    """One KEY=value line: the key, the value every reader gets, its line."""

    key: str
    value: str
    line: int
    text: str


# Paths, relative to the project root (the inventory's folder) or the server.

def encrypted_path(app, env):
    return f"envs/{app}/.env.{env}.enc"


def plain_path(app, env):
    return f"envs/{app}/.env.{env}"


def example_path(app):
    return f"envs/{app}/.env.example"


def server_path(host, app, env):
    """Where the app's compose file finds ENV's variables on the host."""
    return host.path(app, "envs", f".env.{env}")


# Reading env files.

def parse(text, source):
    """The entries of an env file; a line the readers would disagree on fails.

    The error names the file, the line and the key, never the value.
    """
    if text.startswith("\ufeff"):
        raise AetherError(f"{source}:1: the file starts with a byte order mark; "
                          "save it as UTF-8 without one")
    entries, seen = [], {}
    for number, line in enumerate(text.split("\n"), 1):
        where = f"{source}:{number}"
        if "\r" in line:
            raise AetherError(f"{where}: carriage return (a Windows line ending); "
                              "save the file with LF line endings")
        if line == "" or line.startswith("#"):
            continue
        if line[0].isspace():
            raise AetherError(f"{where}: the line starts with a space; start each key "
                              "or comment at the beginning of its line")
        key, equals, raw = line.partition("=")
        if not equals:
            raise AetherError(f"{where}: no '=' on this line; write KEY=value")
        if key.startswith("export "):
            raise AetherError(f"{where}: drop 'export'; write KEY=value")
        if not _KEY.match(key):
            raise AetherError(f"{where}: the text before '=' is not a variable name "
                              "(letters, digits and _, no spaces around '=')")
        if key.startswith("sops_") or key.endswith("_unencrypted"):
            raise AetherError(f"{where}: {key}: sops keeps names starting with 'sops_' or "
                              "ending in '_unencrypted' for itself; rename the key")
        if key in seen:
            raise AetherError(f"{where}: {key} is already set on line {seen[key]}; keep one")
        try:
            value = _value(raw)
        except ValueError as problem:
            raise AetherError(f"{where}: {key}: {problem}") from None
        seen[key] = number
        entries.append(Entry(key, value, number, line))
    return entries


def _value(raw):
    if _CONTROL.search(raw):
        raise ValueError("the value holds a control character; write it as an escape "
                         "inside double quotes (\\n, \\t)")
    if raw[:1] == "'":
        return _single_quoted(raw)
    if raw[:1] == '"':
        return _double_quoted(raw)
    return _unquoted(raw)


def _single_quoted(raw):
    end = raw.find("'", 1)
    if end == -1:
        raise ValueError("the quote is never closed; a value must fit on one line")
    if end != len(raw) - 1:
        if raw.endswith("'"):
            raise ValueError("a single-quoted value cannot hold '; put it in double quotes")
        raise ValueError("text follows the closing quote; put comments on their own line")
    inner = raw[1:-1]
    if "\\\\" in inner or inner.endswith("\\"):
        raise ValueError("python-dotenv reads a backslash before \\ or ' in single quotes as an "
                         "escape, Docker Compose does not; use double quotes")
    if "${" in inner:
        raise ValueError("python-dotenv expands ${...} even inside single quotes, so no "
                         "quoting keeps this value as written")
    return inner


def _double_quoted(raw):
    out, index = [], 1
    while index < len(raw):
        char = raw[index]
        if char == '"':
            if index != len(raw) - 1:
                raise ValueError("text follows the closing quote; put comments on their own line")
            return "".join(out)
        if char == "$":
            raise ValueError("Docker Compose expands $ inside double quotes; "
                             "put the value in single quotes")
        if char == "\\":
            escaped = raw[index + 1:index + 2]
            if escaped == "$":
                raise ValueError("Docker Compose reads \\$ as $, python-dotenv as \\$; "
                                 "put the value in single quotes")
            if escaped == "'":
                raise ValueError("python-dotenv reads \\' as ', Docker Compose as \\'; "
                                 "write ' without the backslash")
            out.append(_ESCAPES.get(escaped, "\\" + escaped))
            index += 2
            continue
        out.append(char)
        index += 1
    raise ValueError("the quote is never closed; a value must fit on one line")


def _unquoted(raw):
    if raw != raw.strip(" \t"):
        raise ValueError("readers drop spaces around an unquoted value; "
                         "remove them or quote the value")
    if re.search(r"[ \t]#", raw):
        raise ValueError("' #' starts a comment in an unquoted value, so readers would cut "
                         "it there; put the value in double quotes")
    if "$" in raw:
        raise ValueError("Docker Compose expands $ in an unquoted value; "
                         "put the value in single quotes")
    return raw


def keys(entries):
    return [entry.key for entry in entries]


# Reading encrypted files without decrypting them.

def encrypted_keys(text):
    """Key names of a sops dotenv file, in order: sops keeps them in clear."""
    out = []
    for line in text.splitlines():
        key, equals, _ = line.partition("=")
        if equals and not line.startswith("#") and not key.startswith("sops_"):
            out.append(key)
    return out


def recipients_of(text):
    """The age public keys a sops dotenv file is encrypted to."""
    return [match.group(1) for match in map(_RECIPIENT.match, text.splitlines()) if match]


def sops_problem(text):
    """Why TEXT is not a whole sops-encrypted dotenv file, or None."""
    lines = text.splitlines()
    if not any(line.startswith("sops_mac=") for line in lines):
        return "it is not a sops-encrypted dotenv file (no sops_mac line)"
    if not recipients_of(text):
        return "it is not encrypted to any age key"
    for line in lines:
        key, _, value = line.partition("=")
        if line.startswith("#ENC[") or key.startswith("sops_"):
            continue
        if line.startswith("#"):
            return "it holds a comment in clear"
        if value and not value.startswith("ENC[AES256_GCM,"):
            return f"{key} is not encrypted"
    return None


def sops_failure(path, exited, stderr, key_file):
    """One line saying why sops failed; sops' own output is never repeated."""
    if exited == 51 or "MAC mismatch" in stderr or "Could not decrypt value" in stderr:
        return (f"{path} is corrupt: its content does not match its MAC (changed outside "
                f"sops); restore it: git checkout -- {path}")
    if "Failed to get the data key" in stderr:
        return (f"no key in {key_file} can decrypt {path}; use a key it is encrypted to, "
                "or ask a holder to add yours and run inv secrets.rotate")
    if "metadata not found" in stderr or "invalid dotenv input" in stderr:
        return f"{path} is not a sops-encrypted dotenv file; restore it: git checkout -- {path}"
    return f"sops failed on {path} (exit status {exited})"


# Commands run on this machine.

def sops_encrypt_argv(sops, recipients):
    """sops encrypting the dotenv text on stdin to RECIPIENTS.

    ``--config /dev/null``: the recipients come from hosts.yml alone, and a
    .sops.yaml written by hand cannot add or drop one.
    """
    return [sops, "--disable-version-check", "--config", "/dev/null", "--encrypt",
            "--input-type", "dotenv", "--output-type", "dotenv",
            "--age", ",".join(recipients), "/dev/stdin"]


def sops_decrypt_argv(sops):
    """sops decrypting the dotenv file on stdin, with SOPS_AGE_KEY_FILE's key."""
    return [sops, "--disable-version-check", "--config", "/dev/null", "--decrypt",
            "--input-type", "dotenv", "--output-type", "dotenv", "/dev/stdin"]


def public_keys_argv(key_file):
    """age-keygen printing the public key of each private key in KEY_FILE."""
    return ["age-keygen", "-y", str(key_file)]


def sops_config(recipients):
    """.sops.yaml for sops run by hand, from hosts.yml's recipients."""
    return "\n".join([
        "# Rendered by Aether from hosts.yml (secrets.recipients); inv secrets.rotate",
        "# rewrites it. Aether passes the recipients to sops itself: this file is for",
        "# sops run by hand, e.g. sops --input-type dotenv envs/helios/.env.dev.enc",
        "creation_rules:",
        "  - path_regex: '^envs/[^/]+/\\.env\\.[a-z0-9-]+(\\.enc)?$'",
        f"    age: {','.join(recipients.values())}",
        "",
    ])


# Comparing without showing values.

def digests(text, salt):
    """{key: digest of its line} and the digest of the whole text, salted.

    The same digests as ``digest_script`` prints on a server, so a push can
    tell which keys change without the server's values leaving it.
    """
    def digest(data):
        return hashlib.sha256((salt + data).encode()).hexdigest()
    lines = {}
    for line in text.split("\n"):
        if line and not line.startswith("#") and "=" in line:
            lines[line.partition("=")[0]] = digest(line)
    return lines, digest(text)


def changes(before, after):
    """(added, changed, removed) key names between two {key: anything} maps."""
    added = [k for k in after if k not in before]
    changed = [k for k in after if k in before and before[k] != after[k]]
    removed = [k for k in before if k not in after]
    return added, changed, removed


def describe(added, changed, removed):
    """'added A; changed B, C' or 'no key changed'."""
    parts = [f"{word} {', '.join(names)}" for word, names in
             (("added", added), ("changed", changed), ("removed", removed)) if names]
    return "; ".join(parts) or "no key changed"


def coverage(example, environments):
    """Which environment has which key, the example's keys first.

    ``example`` is a list of keys, ``environments`` {env: [keys]}. Returns
    rows (key, in example, {env: present}) and {env: keys it lacks}.
    """
    order = list(example)
    for names in environments.values():
        order += [k for k in names if k not in order]
    rows = [(key, key in example, {env: key in names for env, names in environments.items()})
            for key in order]
    lacking = {env: [k for k in example if k not in names]
               for env, names in environments.items()}
    return rows, {env: names for env, names in lacking.items() if names}


# Scripts run on a server.

def digest_script(host, targets, salt):
    """Read-only: for each (app, env), the pushed file's stat and salted digests.

    Prints a ``@@APP ENV`` section per target: ``missing``, or ``stat MODE
    OWNER``, ``file DIGEST`` and ``key NAME DIGEST`` per line. Each line is
    fed to sha256sum by the builtin printf, so no value is ever an argument.
    """
    lines = [
        f"salt={quote(salt)}",
        "digest() {",
        '  local file=$1 line',
        '  if [ ! -e "$file" ]; then echo missing; return; fi',
        "  echo \"stat $(stat -c '%a %U:%G' \"$file\")\"",
        '  echo "file $( { printf "%s" "$salt"; cat "$file"; } | sha256sum | cut -c1-64)"',
        '  while IFS= read -r line || [ -n "$line" ]; do',
        "    [[ $line == *=* && $line != '#'* ]] || continue",
        '    printf "key %s %s\\n" "${line%%=*}" \\',
        '      "$( { printf "%s" "$salt"; printf "%s" "$line"; } | sha256sum | cut -c1-64)"',
        '  done < "$file"',
        "}",
    ]
    for app, env in targets:
        lines.append(f"echo {quote(f'@@{app} {env}')}; digest {quote(server_path(host, app, env))}")
    return "\n".join(lines)


@dataclass
class ServerCopy:
    """What digest_script saw of one pushed file: no value, only digests."""

    stat: str = ""                              # "600 deploy:deploy"
    digest: str = ""                            # of the whole file
    keys: dict = field(default_factory=dict)    # key -> digest of its line


def parse_digests(stdout):
    """{(app, env): ServerCopy, or None where the file is missing}."""
    out, current = {}, None
    for line in stdout.splitlines():
        word, _, rest = line.partition(" ")
        if line.startswith("@@"):
            current = tuple(line[2:].split(" ", 1))
            out[current] = ServerCopy()
        elif current is None or out[current] is None:
            continue
        elif line == "missing":
            out[current] = None
        elif word == "stat":
            out[current].stat = rest
        elif word == "file":
            out[current].digest = rest
        elif word == "key":
            key, _, digest = rest.partition(" ")
            out[current].keys[key] = digest
    return out


def push_script(host, app, env, size):
    """Write stdin to the pushed file atomically, mode 0600, and print its stat.

    The file is written beside its target with umask 077, checked for its
    full SIZE in bytes, synced, then renamed over the old one: a reader sees
    the old file or the new one, never half of one.
    """
    target = server_path(host, app, env)
    folder = target.rsplit("/", 1)[0]
    return "\n".join([
        f"dir={quote(folder)} target={quote(target)}",
        'mkdir -p "$(dirname "$dir")"',
        '[ -d "$dir" ] || mkdir -m 0700 "$dir"',
        "umask 077",
        f'tmp=$(mktemp "$dir/.env.{env}.XXXXXX")',
        "trap 'rm -f \"$tmp\"' EXIT",
        'cat > "$tmp"',
        'got=$(wc -c < "$tmp")',
        f'if [ "$got" -ne {int(size)} ]; then',
        f'  echo "received $got of {int(size)} bytes; the server file is unchanged" >&2; exit 65',
        "fi",
        'chmod 0600 "$tmp"',
        'sync "$tmp"',
        'mv -f "$tmp" "$target"',
        "trap - EXIT",
        "stat -c '%a %U:%G' \"$target\"",
    ])


def pushed_check_script(host, app, env, required):
    """Read-only: does the pushed file exist and hold every REQUIRED key?

    Exits 65 when the file is missing, 66 when it cannot be read, and 67
    with the missing key names on stdout when it lacks some.
    """
    lines = [
        f"file={quote(server_path(host, app, env))}",
        f'[ -e "$file" ] || exit {_MISSING}',
        f'[ -r "$file" ] || exit {_UNREADABLE}',
        "missing=",
    ]
    if required:
        lines += [
            f"for key in {' '.join(quote(k) for k in required)}; do",
            '  grep -q "^$key=" "$file" || missing="$missing $key"',
            "done",
        ]
    lines.append(f'if [ -n "$missing" ]; then echo $missing; exit {_LACKING}; fi')
    return "\n".join(lines)


def pushed_check_result(host, app, env, outcome, required):
    """The check's outcome as a one-line note, or an AetherError to stop on."""
    path = server_path(host, app, env)
    push = f"fab -H {host.name} secrets.push --app {app} --env {env}"
    if outcome.exited == _MISSING:
        raise AetherError(f"{app} {env} on {host.name} has no env file ({path}); push it "
                          f"first: {push}")
    if outcome.exited == _UNREADABLE:
        raise AetherError(f"{path} on {host.name} cannot be read by {host.user}; "
                          f"push it again: {push}")
    if outcome.exited == _LACKING:
        lacking = ", ".join(outcome.stdout.split())
        raise AetherError(f"{path} on {host.name} lacks {lacking} (listed in "
                          f"{example_path(app)}); add them with inv secrets.edit {app} {env}, "
                          f"then {push}")
    if not outcome.ok:
        raise AetherError(f"checking {path} on {host.name} failed (exit status {outcome.exited})")
    return "present" + (f", with the {len(required)} keys of {example_path(app)}"
                        if required else "")


def project_root():
    """The folder holding hosts.yml, envs/ and .sops.yaml."""
    from .inventory import inventory_path
    return inventory_path().resolve().parent


def example_keys(app, root=None):
    """The keys ``envs/APP/.env.example`` lists, or None if it has none."""
    path = (root or project_root()) / example_path(app)
    if not path.is_file():
        return None
    return keys(parse(path.read_text(encoding="utf-8"), example_path(app)))

