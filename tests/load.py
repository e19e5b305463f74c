"""A bounded request loop against a local URL, for zero-downtime checks.

Only loopback targets are accepted. Each request opens a new connection,
as a new visitor would, and the loop stops on its own after ``seconds`` or
``limit`` requests, whichever comes first.
"""
import http.client
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Load:
    """Send GETs to ``url`` with each Host in turn until stopped.

    A host may be given as ``(host, path)`` to ask that path of it instead
    of ``/``; failures are also counted per such target in ``failures``.
    """

    def __init__(self, url, hosts, clients=2, seconds=120, limit=200_000):
        parts = urlsplit(url)
        if parts.hostname not in LOOPBACK:
            raise ValueError(f"load tests only target loopback, not {parts.hostname}")
        self.address, self.port = parts.hostname, parts.port or 80
        self.hosts, self.clients, self.seconds, self.limit = list(hosts), clients, seconds, limit
        self.statuses = Counter()
        self.commits = Counter()
        self.errors = Counter()
        self.failures = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._count = 0

    def _one(self, target):
        host, path = target if isinstance(target, tuple) else (target, "/")
        connection = http.client.HTTPConnection(self.address, self.port, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": host, "Connection": "close"})
            response = connection.getresponse()
            response.read()
            commit = (response.getheader("X-Helios-Commit")
                      or response.getheader("X-Aletheia-Commit") or "")
            return response.status, commit, None
        except (OSError, http.client.HTTPException) as error:
            return None, "", type(error).__name__
        finally:
            connection.close()

    def _loop(self, offset):
        deadline = time.monotonic() + self.seconds
        index = offset
        while not self._stop.is_set() and time.monotonic() < deadline:
            target = self.hosts[index % len(self.hosts)]
            status, commit, error = self._one(target)
            index += 1
            with self._lock:
                self._count += 1
                if error or status >= 500:
                    self.failures[target] += 1
                if error:
                    self.errors[error] += 1
                else:
                    self.statuses[status] += 1
                    self.commits[commit[:12]] += 1
                if self._count >= self.limit:
                    self._stop.set()

    def start(self):
        for offset in range(self.clients):
            thread = threading.Thread(target=self._loop, args=(offset,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        return self

    @property
    def total(self):
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def failed(self):
        return sum(n for s, n in self.statuses.items() if s >= 500) + sum(self.errors.values())

    def report(self):
        return (f"{self.failed} failed of {self.total} requests; statuses {dict(self.statuses)}; "
                f"errors {dict(self.errors)}; commits {dict(self.commits)}")
