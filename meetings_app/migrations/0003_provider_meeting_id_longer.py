from django.db import migrations, models


class Migration(migrations.Migration):
    """A Feishu meeting made through a calendar event is addressed by its calendar and its event."""

    dependencies = [("meetings_app", "0002_meeting_reference")]

    operations = [
        migrations.AlterField(model_name="meeting", name="provider_meeting_id", field=models.CharField(max_length=255)),
    ]
