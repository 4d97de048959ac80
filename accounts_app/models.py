import uuid
import zoneinfo

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models


class Role(models.TextChoices):
    COUNSELOR = "counselor", "Counselor"
    MENTOR = "mentor", "Mentor"
    STUDENT = "student", "Student"
    STAFF = "staff", "Staff"


class CalendarProvider(models.TextChoices):
    FEISHU = "feishu", "Feishu Calendar"
    GOOGLE = "google", "Google Calendar"


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone.")


class User(AbstractUser):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    role = models.CharField(max_length=16, choices=Role.choices, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="user_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_full_name() or self.username} ({self.role})"

    @property
    def is_counselor(self) -> bool:
        return self.role == Role.COUNSELOR


class Profile(models.Model):
    """What the booking flow needs to know about a person: where they live in time and how to reach them."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="profile", primary_key=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    feishu_open_id = models.CharField(max_length=128, blank=True)
    zoom_user_id = models.CharField(max_length=128, blank=True)
    calendar_provider = models.CharField(
        max_length=16, choices=CalendarProvider.choices, default=CalendarProvider.FEISHU
    )
    # Only students have a counselor; the counselor books and sees their sessions.
    counselor = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_student_profiles",
        limit_choices_to={"role": Role.COUNSELOR},
    )

    def __str__(self) -> str:
        return f"profile of {self.user}"
