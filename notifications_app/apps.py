from django.apps import AppConfig


class NotificationsAppConfig(AppConfig):
    name = "notifications_app"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Registers, on import: the result event's recorder (its delivery rows) and handler, in every process
        # that records or publishes events; the two kinds of provider work (deliveries, reminders) for the sweep.
        from notifications_app import services, tasks  # noqa: F401
