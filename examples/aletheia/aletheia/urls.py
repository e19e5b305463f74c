"""The API Helios reads, the health checks, and the collected static files."""
from django.conf import settings
from django.urls import path, re_path
from django.views.static import serve

from websites import views

urlpatterns = [
    path("api/health/", views.health),
    path("api/health/helios/", views.helios_link),
    path("api/v1/websites/", views.website_list),
    path("api/v1/websites/<slug:practice>/", views.website_detail),
    path("api/v1/workers/", views.workers),
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
]
