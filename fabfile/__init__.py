"""Aether's server tasks: ``fab -H HOST NAME``; ``fab --list`` shows them.

HOST is a host name from hosts.yml (vps1, sandbox), never a raw address:
Aether takes the address, user, port and pinned host key from there.
"""
import sys
from pathlib import Path

from invoke import Collection

# fab puts this folder itself on sys.path, where fabfile/secrets.py would
# shadow the standard library's secrets module: take it off, and put the
# project root (the aether package) on instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


from . import aletheia, helios, nginx, secrets, shared  # noqa: E402

namespace = Collection(aletheia, helios, nginx, secrets, shared)
