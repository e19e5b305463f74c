"""Celery tasks: a heartbeat per queue, so a deploy can see its workers run."""
import json
import socket
import time

import redis
from celery import shared_task
from django.conf import settings

HEARTBEAT = "aletheia:heartbeat:{queue}"


def cache():
    return redis.Redis.from_url(settings.REDIS_CACHE_URL, socket_timeout=5)


@shared_task
def heartbeat(queue):
    """Record which commit's worker ran this queue's last task, and when."""
    beat = {"commit": settings.COMMIT, "at": time.time(), "worker": socket.gethostname()}
    cache().set(HEARTBEAT.format(queue=queue), json.dumps(beat), ex=3600)
    return beat


@shared_task
def rebuild_search_index():
    """The kind of long job the heavy worker exists for."""
    from .models import Website
    return sum(len(w.body) for w in Website.objects.all())
