"""`manage.py run_provider_sandbox`: serve the Feishu, Zoom and Google Calendar sandbox until stopped."""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from booking_project.demo import demo_only
from meetings_app.sandbox import EventTarget, ProviderSandbox


def _stop_on_sigterm(signum, frame):
    # Unwinds serve_forever like Ctrl-C does, so the port is closed on the way out.
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Serve the provider sandbox (API.md 'Provider sandbox'): Feishu, Zoom and Google Calendar endpoints "
        "with configurable latency and injected failures. Runs until SIGINT or SIGTERM."
    )
    # The sandbox uses neither the database nor the models: no reason to refuse to start over a check.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8090, help="Port to listen on (default 8090; 0 picks one).")
        parser.add_argument("--latency-ms", type=float, default=0, help="Wait before every provider call (ms).")
        parser.add_argument("--fail-rate", type=float, default=0.0, help="Share of provider calls that fail (0-1).")
        parser.add_argument("--verbose", action="store_true", help="Log one line per request to stderr.")
        parser.add_argument(
            "--events-url",
            default="",
            help="The app's base URL: POST /_sandbox/meetings/{id}/start|end sends Zoom's events to "
            "{url}/api/providers/zoom/events and Feishu's to {url}/api/providers/feishu/events (empty: none sent).",
        )
        # The same secrets the app checks with, from the same environment variables by default.
        parser.add_argument("--zoom-webhook-secret", default=settings.ZOOM_WEBHOOK_SECRET_TOKEN)
        parser.add_argument("--feishu-verification-token", default=settings.FEISHU_EVENT_VERIFICATION_TOKEN)
        parser.add_argument("--feishu-encrypt-key", default=settings.FEISHU_EVENT_ENCRYPT_KEY)

    def handle(self, *args, **options):
        demo_only("run_provider_sandbox", "it answers as Feishu, Zoom and Google would, with no meeting behind it.")
        if options["latency_ms"] < 0:
            raise CommandError("--latency-ms must be >= 0.")
        if not 0 <= options["fail_rate"] <= 1:
            raise CommandError("--fail-rate must be between 0 and 1.")
        try:
            sandbox = ProviderSandbox(
                host=options["host"],
                port=options["port"],
                latency_ms=options["latency_ms"],
                fail_rate=options["fail_rate"],
                verbose=options["verbose"],
                event_target=EventTarget(
                    url=options["events_url"],
                    zoom_secret_token=options["zoom_webhook_secret"],
                    feishu_verification_token=options["feishu_verification_token"],
                    feishu_encrypt_key=options["feishu_encrypt_key"],
                ),
            )
        except OSError as error:
            raise CommandError(f"Cannot listen on {options['host']}:{options['port']}: {error}") from error
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        self.stdout.write(
            f"Provider sandbox listening on {sandbox.url} "
            f"(latency {options['latency_ms']:g} ms, fail rate {options['fail_rate']:g}; "
            f"events to {options['events_url'] or 'nowhere'})"
        )
        self.stdout.flush()
        try:
            sandbox.serve_forever()
        except KeyboardInterrupt:
            pass
