from django.apps import AppConfig


class HoldsAppConfig(AppConfig):
    name = "holds_app"
    verbose_name = "Entitlements and holds"
