"""The Celery app: broker and schedule come from Django's settings."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aletheia.settings")

app = Celery("aletheia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
