from uuid import UUID

from holds_app.models import Entitlement


def balances_for_student(*, student_id: UUID) -> dict[str, int]:
    """Units still free per session type: bought - consumed - active holds."""
    rows = (
        Entitlement.objects.filter(student_id=student_id)
        .with_units_spent()
        .values_list("session_type", "units_bought", "units_spent")
    )
    return {session_type: bought - spent for session_type, bought, spent in rows}
