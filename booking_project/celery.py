import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "booking_project.settings")

app = Celery("booking_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_stale_database_connections(**_kwargs) -> None:
    # Celery does not run Django's request hooks: without this a thread or greenlet pool keeps broken or
    # over-age connections, and a task after a database restart fails on a dead one.
    from django.db import close_old_connections

    close_old_connections()
