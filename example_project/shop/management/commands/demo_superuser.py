"""``manage.py demo_superuser``: the demo's admin account, created once.

Unlike ``createsuperuser --noinput`` it succeeds when the user already exists, so
``make demo`` can run it every time. It refuses to run with ``DEBUG = False``:
a well-known password has no place on a real server.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the demo superuser (admin/admin) unless it exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin")
        parser.add_argument("--email", default="admin@example.com")

    def handle(self, *args, username, password, email, **options):
        if not settings.DEBUG:
            raise CommandError("demo_superuser only runs with DEBUG = True.")
        users = get_user_model()._default_manager
        if users.filter(username=username).exists():
            self.stdout.write(f"Superuser {username!r} already exists.")
            return
        users.create_superuser(username=username, email=email, password=password)
        self.stdout.write(self.style.SUCCESS(f"Created superuser {username!r}."))
