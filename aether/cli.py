"""Task decorators: every Aether task fails the same way, in one line.

``local_task`` wraps an Invoke task and ``server_task`` a Fabric task; both
turn an AetherError into ``invoke.Exit`` with exit status 1, so the operator
sees ``error: <what is wrong, where, what to do>`` and no traceback. Set
AETHER_DEBUG=1 to get the traceback as well.
"""
import functools
import os

import fabric
import invoke

from .errors import AetherError


def _failing_in_one_line(body):
    @functools.wraps(body)
    def wrapper(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except AetherError as error:
            if os.environ.get("AETHER_DEBUG"):
                raise
            detail = getattr(error, "detail", "")
            message = f"error: {error}"
            if detail:
                message = f"{detail.rstrip()}\n{message}"
            raise invoke.Exit(message, code=1) from None
        except KeyboardInterrupt:
            raise invoke.Exit("error: interrupted", code=130) from None
    return wrapper


def local_task(*args, **kwargs):
    """An Invoke task (``inv NAME``) that fails in one line."""
    def decorate(body):
        return invoke.task(_failing_in_one_line(body), **kwargs)
    if args and callable(args[0]):
        return decorate(args[0])
    return decorate


def server_task(*args, **kwargs):
    """A Fabric task (``fab -H HOST NAME``) that fails in one line."""
    def decorate(body):
        return fabric.task(_failing_in_one_line(body), **kwargs)
    if args and callable(args[0]):
        return decorate(args[0])
    return decorate


def target_host(connection):
    """The inventory host a Fabric task was given with ``fab -H NAME``."""
    from . import inventory
    name = getattr(connection, "original_host", None) or getattr(connection, "host", None)
    inv = inventory.load()
    if not name:
        raise AetherError(f"no host given: run fab -H HOST ... with a host from "
                          f"{inv.source} ({', '.join(inv.hosts)})")
    return inv, inv.host(name)


def check_ref(ref):
    """REF must be something git could resolve: never empty, never an option."""
    from .release import ref_problem
    problem = ref_problem(ref)
    if problem:
        raise AetherError(f"--ref {ref!r} {problem}: pass a branch, tag or commit, e.g. --ref main")
    return ref


def check_env(inventory, host, env):
    """ENV must be one of the host's environments."""
    if env is None:
        raise AetherError(f"--env is missing: pass --env with one of {host.name}'s environments "
                          f"({', '.join(host.environments)})")
    if env not in host.environments:
        raise AetherError(f"unknown environment {env!r} for {host.name} "
                          f"(known: {', '.join(host.environments)}); pass --env prod, staging or dev")
    return env
