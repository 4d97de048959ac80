from django.apps import AppConfig


class MeetingsAppConfig(AppConfig):
    name = "meetings_app"
    verbose_name = "Meetings"
