from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Sessions"

    def ready(self) -> None:
        # Event handlers register themselves when their module is imported; the web process publishes
        # events too, so it must know them as well as the worker does.
        from sessions_app import tasks  # noqa: F401
