from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import sessions  # noqa: F401  (connects the login signal that starts the idle clock)
