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
