from django.db import migrations, models


class Migration(migrations.Migration):
    """The saga and the meeting operations become rows of the provider-work engine: `retry_at` is the row's
    `not_before`, and a lost answer or an unexpected error is remembered on the row."""

    dependencies = [("sessions_app", "0004_meeting_operation")]

    operations = [
        *(
            operation
            for model in ("meetingsaga", "meetingoperation")
            for operation in (
                migrations.RenameField(model_name=model, old_name="retry_at", new_name="not_before"),
                migrations.AddField(
                    model_name=model, name="outcome_unknown", field=models.BooleanField(default=False)
                ),
                migrations.AddField(
                    model_name=model, name="unexpected_errors", field=models.PositiveSmallIntegerField(default=0)
                ),
            )
        ),
    ]
