"""The Aletheia stand-in: websites CMS, API and Celery workers."""
from .celery import app as celery_app

__all__ = ("celery_app",)
