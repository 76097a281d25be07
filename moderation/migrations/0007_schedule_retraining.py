"""Schedule `maybe_retrain` every 30 minutes as a django-celery-beat PeriodicTask: a row an admin
can re-time or switch off in the admin, unlike an entry in settings."""

from django.db import migrations

TASK_NAME = "Retrain from reviewer labels"
TASK = "moderation.tasks.maybe_retrain"
EVERY_MINUTES = 30


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=EVERY_MINUTES, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={"task": TASK, "interval": interval,
                  "description": "Requests a training run per policy once enough new reviewer labels exist."},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME, task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0006_retraining_calibration"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
