"""Saving a website tells Helios to rebuild that practice's pages (ISR)."""
import json
import logging
import urllib.request

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Website

log = logging.getLogger("websites")


def revalidate(practice):
    """POST the practice's tag to Helios's webhook; a failure is logged only."""
    if not settings.HELIOS_REVALIDATE_URL:
        return None
    payload = json.dumps({"secret": settings.REVALIDATION_SECRET,
                          "tags": [f"website:{practice}"]}).encode()
    request = urllib.request.Request(settings.HELIOS_REVALIDATE_URL, data=payload, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            log.info("revalidated website:%s (%s)", practice, response.status)
            return response.status
    except OSError as error:
        log.warning("revalidating website:%s failed: %s", practice, error)
        return None


@receiver(post_save, sender=Website)
def website_saved(sender, instance, **kwargs):
    transaction.on_commit(lambda: revalidate(instance.practice))
