"""Aether's local tasks: ``inv --list`` shows them all.

Tasks that change a server are Fabric tasks in ``fabfile/`` and run as
``fab -H HOST NAME``; the ones here work on this machine: the sandbox VPS,
the inventory's plan and rendered files, secrets, the developer's setup.
"""
from invoke import Collection

from aether.tasks import infra, sandbox, secrets

namespace = Collection(sandbox.namespace, infra.namespace, secrets.namespace)
