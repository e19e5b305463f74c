#!/usr/bin/env python3
"""Failed requests during a deploy, against a plain restart as the baseline.

Each round sends a bounded request loop through the sandbox's nginx (two
clients, every Helios prod domain in turn) while, first, the live container
is recreated in place the way the old deploy script did it
(``docker compose up -d --force-recreate``), then while ``fab -H sandbox
helios.deploy`` takes a new commit live. It prints each round and the
medians. Needs ``inv sandbox.up`` and a first deploy of helios prod.

    .venv/bin/python bench/deploy_downtime.py [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from aether import inventory  # noqa: E402
from conftest import GitRemote  # noqa: E402
from load import Load  # noqa: E402

BIN = ROOT / ".venv" / "bin"


def facts():
    out = subprocess.run([str(BIN / "inv"), "sandbox.status", "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def under_load(url, hosts, action):
    load = Load(url, hosts, clients=2, seconds=240).start()
    time.sleep(1.5)
    began = time.monotonic()
    action()
    spent = time.monotonic() - began
    # Count every failure the action causes: nginx may keep resolving a
    # recreated container's old address for a while, so wait until the
    # failures stop growing for 3 s (at most 60 s).
    last, quiet_since, deadline = load.failed, time.monotonic(), time.monotonic() + 60
    while time.monotonic() - quiet_since < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        if load.failed != last:
            last, quiet_since = load.failed, time.monotonic()
    load.stop()
    return load, spent


def restart_in_place(sandbox):
    state = json.loads((Path(sandbox["server_root"]) / ".aether/releases/helios-prod.json").read_text())
    live = state["live"]
    env = {**os.environ, "DOCKER_HOST": sandbox["docker_host"], "ENVIRONMENT": "prod",
           "COLOR": live["color"], "IMAGE": live["image"]}
    subprocess.run(["docker", "compose", "-p", f"helios-prod-{live['color']}", "-f",
                    "docker-compose.yml", "-f", "docker-compose.prod.yml", "up", "-d",
                    "--force-recreate", "--wait"], cwd=Path(sandbox["server_root"]) / "helios",
                   env=env, check=True, capture_output=True)


def deploy(remote, round_number):
    remote.push("main", {"CHANGELOG": f"bench round {round_number} {time.time()}\n"}, "Bench release")
    subprocess.run([str(BIN / "fab"), "-H", "sandbox", "helios.deploy", "--env", "prod",
                    "--ref", "main"], cwd=ROOT, check=True, capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    sandbox = facts()
    hosts = [d for d, _ in inventory.load().apps["helios"].domains["prod"]]
    remote = GitRemote(sandbox["git"]["helios"])
    rows = {"restart in place (baseline)": [], "helios.deploy": []}
    for n in range(1, rounds + 1):
        for name, action in (("restart in place (baseline)", lambda: restart_in_place(sandbox)),
                             ("helios.deploy", lambda: deploy(remote, n))):
            load, spent = under_load(sandbox["http_url"], hosts, action)
            rows[name].append((load.failed, load.total, spent))
            print(f"round {n} {name:28} {load.failed:6} failed of {load.total:6} "
                  f"requests in {spent:5.1f}s", flush=True)
    print()
    print(f"{'median over ' + str(rounds) + ' rounds':36} {'failed':>7} {'total':>7} "
          f"{'failed %':>9} {'seconds':>8}")
    medians = {}
    for name, values in rows.items():
        failed = statistics.median(v[0] for v in values)
        total = statistics.median(v[1] for v in values)
        seconds = statistics.median(v[2] for v in values)
        medians[name] = failed / total if total else 0
        print(f"{name:36} {failed:7.0f} {total:7.0f} {100 * failed / total:8.2f}% {seconds:8.1f}")
    base, ours = medians["restart in place (baseline)"], medians["helios.deploy"]
    ratio = "n/a (no failures either way)" if not base else \
        f"{ours / base:.3f} (deploy failure rate / baseline failure rate)"
    print(f"ratio: {ratio}")


if __name__ == "__main__":
    main()
