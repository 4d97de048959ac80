"""`manage.py operators_group [--add USERNAME ...]`: the "operators" group, created or brought up to date (README
"Operators and permissions"); with --add, those staff users made operators. Safe to run on every deploy."""

from django.core.management.base import BaseCommand, CommandError

from accounts_app.models import User
from accounts_app.services import OPERATORS_GROUP, operator_make, operators_group_ensure


class Command(BaseCommand):
    help = 'Create or update the "operators" group; --add USERNAME makes a user an operator (staff, not superuser).'

    def add_arguments(self, parser):
        parser.add_argument("--add", nargs="+", default=[], metavar="USERNAME", help="Users to make operators.")

    def handle(self, *args, **options):
        group = operators_group_ensure()
        for username in options["add"]:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user {username!r}.")
            operator_make(user=user)
        members = ", ".join(sorted(group.user_set.values_list("username", flat=True))) or "nobody yet"
        self.stdout.write(f'Group "{OPERATORS_GROUP}": {group.permissions.count()} permissions; members: {members}.')
