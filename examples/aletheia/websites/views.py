"""The websites API, the health checks, and the commit header."""
import json
import time
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from .models import Website
from .tasks import HEARTBEAT, cache


def commit_header(get_response):
    def middleware(request):
        response = get_response(request)
        response["X-Aletheia-Commit"] = settings.COMMIT
        return response
    return middleware


def health(request):
    """200 once the database answers; what the deploy waits for."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 (any database failure means unhealthy)
        return JsonResponse({"status": "database unavailable", "error": str(error)[:200],
                             "commit": settings.COMMIT}, status=503)
    return JsonResponse({"status": "ok", "commit": settings.COMMIT,
                         "environment": settings.ENVIRONMENT})


def helios_link(request):
    """Whether Helios's webhook host answers from here (200, else 502)."""
    parts = urlsplit(settings.HELIOS_REVALIDATE_URL)
    url = f"{parts.scheme}://{parts.netloc}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = json.loads(response.read() or b"{}")
        return JsonResponse({"helios": url, "commit": body.get("commit")})
    except (OSError, ValueError) as error:
        return JsonResponse({"helios": url, "error": str(error)[:200]}, status=502)


def website_list(request):
    return JsonResponse({"results": [w.as_json() for w in Website.objects.all()]})


def website_detail(request, practice):
    website = Website.objects.filter(practice=practice).first()
    if website is None:
        return JsonResponse({"detail": "not found"}, status=404)
    return JsonResponse(website.as_json())


def workers(request):
    """The last heartbeat of each queue's worker, with its age in seconds."""
    out = {}
    for queue in ("default", "heavy"):
        raw = cache().get(HEARTBEAT.format(queue=queue))
        beat = json.loads(raw) if raw else None
        if beat:
            beat["age"] = round(time.time() - beat["at"], 1)
        out[queue] = beat
    return JsonResponse(out)
