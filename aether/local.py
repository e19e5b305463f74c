"""Run commands on this machine: argv lists only, never a shell string."""
import subprocess

from .errors import AetherError


def run(argv, *, check=True, stdin=None, env=None, timeout=None, cwd=None):
    """Run ``argv`` and return the CompletedProcess (text, captured).

    A failure raises AetherError naming the program, with its last lines of
    output kept in ``detail`` for the task layer to show.
    """
    try:
        done = subprocess.run(
            argv, input=stdin, env=env, cwd=cwd, timeout=timeout,
            capture_output=True, text=True)
    except FileNotFoundError:
        raise AetherError(f"{argv[0]} is not installed: run scripts/bootstrap") from None
    except subprocess.TimeoutExpired:
        raise AetherError(f"{argv[0]} did not finish within {timeout}s") from None
    if check and done.returncode != 0:
        error = AetherError(f"{' '.join(argv[:3])} failed with exit status {done.returncode}")
        error.detail = last_lines(done.stdout + done.stderr)
        raise error
    return done


def last_lines(text, count=15):
    """The tail of a command's output, which is where the reason usually is."""
    return "\n".join(text.strip().splitlines()[-count:])
