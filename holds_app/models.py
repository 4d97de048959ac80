import uuid

from django.conf import settings
from django.db import models


class EntitlementQuerySet(models.QuerySet):
    def with_units_spent(self) -> "EntitlementQuerySet":
        """Annotate `units_spent`: units held or consumed, so no longer free (free = bought - spent)."""
        return self.annotate(
            units_spent=models.Count("holds", filter=models.Q(holds__status__in=SPENDING_HOLD_STATUSES))
        )


class Entitlement(models.Model):
    """Units of one billable session type a student has bought."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="entitlements")
    session_type = models.CharField(max_length=32)
    units_bought = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EntitlementQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["student", "session_type"], name="entitlement_one_per_student_type"),
        ]

    def __str__(self) -> str:
        return f"{self.units_bought} x {self.session_type} for {self.student_id}"


class HoldStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    CONSUMED = "consumed", "Consumed"


# A unit stops being free when it is held for a session and stays spent once consumed.
SPENDING_HOLD_STATUSES = (HoldStatus.ACTIVE, HoldStatus.CONSUMED)


class Hold(models.Model):
    """One unit of an entitlement reserved for one session; released if the session does not happen."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="holds")
    # The session this unit is held for. Not a foreign key: holds know nothing of sessions.
    session_id = models.UUIDField(db_index=True)
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=HoldStatus.values), name="hold_status_valid"),
            # A session never holds two live units of the same entitlement.
            models.UniqueConstraint(
                fields=["entitlement", "session_id"],
                condition=~models.Q(status=HoldStatus.RELEASED),
                name="hold_one_live_per_session",
            ),
        ]
        indexes = [models.Index(fields=["entitlement", "status"], name="hold_entitlement_status")]

    def __str__(self) -> str:
        return f"hold {self.id} ({self.status})"


class BalanceChange(models.Model):
    """A person changed how many units a student bought (the admin): who, when, from what to what, and how many
    were held or consumed then (what the balance could not go below). Append-only, like the sessions' audit
    trail: the database refuses UPDATE, DELETE and TRUNCATE on this table (see the migration)."""

    id = models.BigAutoField(primary_key=True)
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="balance_changes")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    # Where the change came from: "admin".
    via = models.CharField(max_length=16)
    # Null when this change created the entitlement.
    units_before = models.PositiveIntegerField(null=True, blank=True)
    units_after = models.PositiveIntegerField()
    units_spent = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "balance changes"

    def __str__(self) -> str:
        return f"{self.entitlement_id}: {self.units_before} -> {self.units_after} by {self.actor_id or 'the system'}"
