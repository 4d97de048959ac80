"""What exists for a laptop, a demo or a test run, never for production."""

from django.conf import settings
from django.core.management.base import CommandError


def demo_only(command: str, why: str) -> None:
    """Refuse to run `command` when DJANGO_ENV=production, saying why."""
    if settings.PRODUCTION:
        raise CommandError(f"{command} refuses to run with DJANGO_ENV=production: {why}")
