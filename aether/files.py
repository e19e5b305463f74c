"""Builders that put rendered files on a server safely.

``install_script`` writes a set of files below the host root in one remote
step: each file goes to ``NAME.aether-new`` first and is renamed into place
only if its content changed, the previous version is kept aside, and an
optional check (``nginx -t``, ``sshd -t`` ...) runs afterwards. If the check
fails, a shell function ``restore`` puts every previous file back and
removes the ones that did not exist before. Files marked create-only (state
such as nginx's live files) are written only when missing.

The step prints ``changed PATH`` for each file it replaced, so the task can
say "nothing to change" when nothing did.
"""
from .remote import quote


def install_script(root, files, check="", create_only=(), modes=None):
    """A bash script installing ``files`` ({relative path: text}) under ``root``."""
    modes = modes or {}
    lines = [
        f"root={quote(root.rstrip('/'))}",
        'backup=$(mktemp -d) created=$(mktemp)',
        'trap \'rm -rf "$backup" "$created"\' EXIT',
        "changed=0",
        "restore() {",
        '  (cd "$backup" && find . -type f -print0 | while IFS= read -r -d "" f; do'
        ' cp -p "$f" "$root/$f"; done)',
        '  while IFS= read -r f; do rm -f "$root/$f"; done < "$created"',
        "}",
        "place() {  # place RELATIVE-PATH MODE, content on stdin",
        '  local target="$root/$1" new="$root/$1.aether-new"',
        '  mkdir -p "$(dirname "$target")"',
        '  cat > "$new" && chmod "$2" "$new"',
        '  if [ -e "$target" ] && cmp -s "$new" "$target"; then rm -f "$new"; return; fi',
        '  if [ -e "$target" ]; then mkdir -p "$backup/$(dirname "$1")"; cp -p "$target" "$backup/$1";'
        ' else printf "%s\\n" "$1" >> "$created"; fi',
        '  mv -f "$new" "$target"; changed=1; printf "changed %s\\n" "$1"',
        "}",
    ]
    for path, text in files.items():
        mode = modes.get(path, "0644")
        guard = f'[ -e "$root/"{quote(path)} ] || ' if path in create_only else ""
        lines.append(f"{guard}place {quote(path)} {mode} <<'AETHER_EOF'")
        lines.append(_heredoc_body(text))
        lines.append("AETHER_EOF")
    if check:
        lines += ['if [ "$changed" = 1 ]; then', check, "fi"]
    return "\n".join(lines)


def _heredoc_body(text):
    """File content for a quoted heredoc; it must end without a newline."""
    if "\nAETHER_EOF\n" in f"\n{text}\n":
        raise ValueError("a rendered file contains the heredoc terminator")
    return text[:-1] if text.endswith("\n") else text


def changed_paths(stdout):
    return [line[len("changed "):] for line in stdout.splitlines() if line.startswith("changed ")]


def diff_script(root, files, create_only=()):
    """A read-only bash script printing a unified diff per file that would change.

    Each differing file starts with ``changed PATH``; a file missing on
    the server diffs against /dev/null. Create-only files that exist are
    skipped, as the install would skip them.
    """
    lines = [f"root={quote(root.rstrip('/'))}"]
    for path, text in files.items():
        target = f'"$root/"{quote(path)}'
        guard = f"[ -e {target} ] || " if path in create_only else ""
        lines += [
            f"{guard}{{ if [ -e {target} ]; then old={target}; else old=/dev/null; fi",
            f"  if ! out=$(diff -u --label {quote('server/' + path)} --label {quote('new/' + path)}"
            f" \"$old\" - <<'AETHER_EOF'",
            _heredoc_body(text),
            "AETHER_EOF",
            "  ); then printf 'changed %s\\n%s\\n' " + quote(path) + ' "$out"; fi; }',
        ]
    return "\n".join(lines)
