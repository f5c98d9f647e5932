"""python manage.py create_api_token USER [--dataset SLUG] [--write] [--days 90] [--name NAME]"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from annotator.models import Dataset
from exports.tokens import api_token_create


class Command(BaseCommand):
    help = "Make an API token for USER and print its key once. Read-only unless --write."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--dataset", help="Limit the token to this dataset (slug). Default: all the user's datasets.")
        parser.add_argument("--write", action="store_true", help="Allow writes (uploads, creating datasets).")
        parser.add_argument("--days", type=int, default=90, help="Lifetime in days (1 to 366, default 90).")
        parser.add_argument("--name", default="command line")

    def handle(self, *args, username, dataset, write, days, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        ds = None
        if dataset:
            ds = Dataset.objects.filter(slug=dataset).first()
            if ds is None:
                raise CommandError(f"no dataset {dataset!r}")
        try:
            token, key = api_token_create(user=user, name=name, dataset=ds, can_write=write, days=days)
        except Http404:
            raise CommandError(f"{username} is not a member of {dataset}") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        scope = f"dataset {ds.slug}" if ds else "all of the user's datasets"
        self.stderr.write(f"token {token.prefix}… for {username}: {'read-write' if write else 'read-only'}, {scope}, expires {token.expires_at:%Y-%m-%d}")
        self.stdout.write(key)
