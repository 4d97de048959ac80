from uuid import UUID

from django.db.models import Count, Q

from holds_app.models import Entitlement, HoldStatus


def balances_for_student(*, student_id: UUID) -> dict[str, int]:
    """Units still free per session type: bought - consumed - active holds."""
    rows = (
        Entitlement.objects.filter(student_id=student_id)
        .annotate(spent=Count("holds", filter=Q(holds__status__in=[HoldStatus.ACTIVE, HoldStatus.CONSUMED])))
        .values_list("session_type", "units_bought", "spent")
    )
    return {session_type: bought - spent for session_type, bought, spent in rows}
