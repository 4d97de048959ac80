"""Prints the integration-event registry: every event type, its version, producers, meaning, handlers and what
is recorded with it."""

import json

from django.core.management.base import BaseCommand

from booking_project.events import EVENT_TYPES


class Command(BaseCommand):
    help = "List every integration event type with its version, producers, description and handlers."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")

    def handle(self, *args, **options):
        registry = [
            {
                "type": event_type.name,
                "version": event_type.version,
                "producers": list(event_type.producers),
                "description": event_type.description,
                "handlers": [
                    getattr(h, "name", None) or f"{h.__module__}.{h.__qualname__}" for h in event_type.handlers
                ],
                "recorders": [f"{r.__module__}.{r.__qualname__}" for r in event_type.recorders],
            }
            for event_type in EVENT_TYPES.values()
        ]
        if options["json"]:
            self.stdout.write(json.dumps(registry, indent=2))
            return
        for entry in registry:
            self.stdout.write(f"{entry['type']} v{entry['version']}")
            self.stdout.write(f"  {entry['description']}")
            self.stdout.write(f"  produced by: {', '.join(entry['producers'])}")
            self.stdout.write(f"  handled by:  {', '.join(entry['handlers']) or '(no handler yet)'}")
            if entry["recorders"]:
                self.stdout.write(f"  recorded with: {', '.join(entry['recorders'])}")
