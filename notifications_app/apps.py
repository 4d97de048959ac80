from django.apps import AppConfig


class NotificationsAppConfig(AppConfig):
    name = "notifications_app"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # The result-event handler registers itself on import; the web process publishes events too.
        from notifications_app import tasks  # noqa: F401
