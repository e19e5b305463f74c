from django.apps import AppConfig


class WebsitesConfig(AppConfig):
    name = "websites"

    def ready(self):
        from . import signals  # noqa: F401  (connects the save signal)
