from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Sessions"

    def ready(self) -> None:
        # Event handlers register themselves when their module is imported; the web process publishes
        # events too, so it must know them as well as the worker does. The same for the providers' webhooks:
        # life registers the listener that moves sessions (session_meeting_reported).
        from sessions_app import life, tasks  # noqa: F401
