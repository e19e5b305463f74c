"""One practice's website content, as the Helios practice page shows it."""
from django.db import models


class Website(models.Model):
    practice = models.SlugField(unique=True)     # cda, vsm, pds, ths
    name = models.CharField(max_length=200)
    headline = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["practice"]

    def as_json(self):
        return {"practice": self.practice, "name": self.name, "headline": self.headline,
                "body": self.body, "updated_at": self.updated_at.isoformat()}
