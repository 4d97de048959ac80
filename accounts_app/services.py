from django.contrib.auth.models import Group
from django.db import transaction

from accounts_app.models import Profile, Role, User


@transaction.atomic
def person_create(
    *,
    username: str,
    role: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    password: str | None = None,
    time_zone: str = "UTC",
    feishu_open_id: str = "",
    zoom_user_id: str = "",
    calendar_provider: str = "feishu",
    counselor: User | None = None,
) -> User:
    """Create a person and their profile. A student must be assigned to a counselor."""
    if role == Role.STUDENT and (counselor is None or counselor.role != Role.COUNSELOR):
        raise ValueError("A student must be assigned to a counselor.")
    if role != Role.STUDENT and counselor is not None:
        raise ValueError("Only students are assigned to a counselor.")
    user = User(username=username, role=role, email=email, first_name=first_name, last_name=last_name)
    user.is_staff = role == Role.STAFF
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    Profile.objects.create(
        user=user,
        time_zone=time_zone,
        feishu_open_id=feishu_open_id,
        zoom_user_id=zoom_user_id,
        calendar_provider=calendar_provider,
        counselor=counselor,
    )
    return user


OPERATORS_GROUP = "operators"
# What operators may do besides looking: work the manual-intervention queue, send again (or resolve) the
# notifications that gave up, and pause a provider during its outage.
# Each admin action names the one it needs (sessions_app/admin.py, notifications_app/admin.py).
OPERATOR_ACTION_PERMISSIONS = [
    "sessions_app.retry_manualintervention",
    "sessions_app.reprovision_manualintervention",
    "sessions_app.resolve_manualintervention",
    "notifications_app.retry_notification",
    "notifications_app.resolve_notification",
    "meetings_app.pause_provider",
]
# Where operators look: every list these apps keep in the admin (view_* only; nothing there is edited by hand,
# and balances are not theirs to change: holds_app.change_entitlement is granted on its own).
OPERATOR_VIEWED_APPS = ["sessions_app", "holds_app", "calendar_app", "meetings_app", "notifications_app"]


@transaction.atomic
def operators_group_ensure() -> Group:
    """The "operators" group with exactly the operators' permissions (created, or brought up to date)."""
    from django.contrib.auth.models import Permission
    from django.db.models import Q

    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    actions = Q()
    for name in OPERATOR_ACTION_PERMISSIONS:
        app_label, codename = name.split(".")
        actions |= Q(content_type__app_label=app_label, codename=codename)
    views = Q(content_type__app_label__in=OPERATOR_VIEWED_APPS, codename__startswith="view_")
    permissions = list(Permission.objects.filter(actions | views))
    missing = set(OPERATOR_ACTION_PERMISSIONS) - {f"{p.content_type.app_label}.{p.codename}" for p in permissions}
    if missing:
        raise RuntimeError(f"Permissions not found (migrations not run?): {sorted(missing)}")
    group.permissions.set(permissions)
    return group


@transaction.atomic
def operator_make(*, user: User) -> User:
    """Make `user` an operator: staff (may log in to the admin), not a superuser, in the operators group."""
    user.is_staff, user.is_superuser = True, False
    user.save(update_fields=["is_staff", "is_superuser"])
    user.groups.add(operators_group_ensure())
    return user
