"""Settings, all from the environment the compose files give each container.

Secrets (DATABASE_PASSWORD, DJANGO_SECRET_KEY, REVALIDATION_SECRET) come
from the environment's env file; everything else from the compose files.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
ENVIRONMENT = os.environ.get("ENVIRONMENT", "local")
COMMIT = os.environ.get("COMMIT", "unknown")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or ("local-only" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("DJANGO_SECRET_KEY is not set")
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "websites",
]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "websites.views.commit_header",
]
ROOT_URLCONF = "aletheia.urls"
WSGI_APPLICATION = "aletheia.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("DATABASE_HOST", "localhost"),
        "PORT": os.environ.get("DATABASE_PORT", "5432"),
        "NAME": os.environ.get("DATABASE_NAME", "aletheia_local"),
        "USER": os.environ.get("DATABASE_USER", "aletheia_local"),
        "PASSWORD": os.environ.get("DATABASE_PASSWORD", ""),
        "CONN_MAX_AGE": 60,   # a new connection costs a SCRAM handshake
        "OPTIONS": {"connect_timeout": 5},
    }
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"websites.tasks.rebuild_search_index": {"queue": "heavy"}}
CELERY_BEAT_SCHEDULE = {
    "heartbeat-default": {"task": "websites.tasks.heartbeat", "schedule": 5.0,
                          "args": ("default",), "options": {"queue": "default"}},
    "heartbeat-heavy": {"task": "websites.tasks.heartbeat", "schedule": 5.0,
                        "args": ("heavy",), "options": {"queue": "heavy"}},
}
REDIS_CACHE_URL = os.environ.get("REDIS_CACHE_URL", "redis://localhost:6379/1")

HELIOS_REVALIDATE_URL = os.environ.get("HELIOS_REVALIDATE_URL", "")
REVALIDATION_SECRET = os.environ.get("REVALIDATION_SECRET", "")

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"websites": {"handlers": ["console"], "level": "INFO"}},
}
