"""Change a practice's website content and save it (which calls the webhook)."""
from django.core.management.base import BaseCommand, CommandError

from websites.models import Website


class Command(BaseCommand):
    help = "Edit one practice's website: edit_website CODE --headline TEXT [--body TEXT]"

    def add_arguments(self, parser):
        parser.add_argument("practice")
        parser.add_argument("--headline")
        parser.add_argument("--body")

    def handle(self, practice, headline=None, body=None, **options):
        website = Website.objects.filter(practice=practice).first()
        if website is None:
            raise CommandError(f"no website for practice {practice!r}")
        if headline is not None:
            website.headline = headline
        if body is not None:
            website.body = body
        website.save()
        self.stdout.write(f"saved website {practice}: {website.headline}")
