"""Aether's server tasks: ``fab -H HOST NAME``; ``fab --list`` shows them.

HOST is a host name from hosts.yml (vps1, sandbox), never a raw address:
Aether takes the address, user, port and pinned host key from there.
"""
import sys
from pathlib import Path

from invoke import Collection

# fab imports this package by path; make the aether package beside it importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from . import aletheia, helios, nginx, secrets, shared  # noqa: E402

namespace = Collection(aletheia, helios, nginx, secrets, shared)
