from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db import connection

from accounts_app.models import Profile, Role, User


def people_get_by_ids(*, ids: Iterable[UUID]) -> dict[UUID, User]:
    """Every listed person that exists, with their profile, in one query."""
    return {u.id: u for u in User.objects.select_related("profile").filter(id__in=set(ids))}


@dataclass(frozen=True)
class PersonStanding:
    """What a booking checks of a person: their role, whether they are active, and their counselor (students)."""

    role: str
    is_active: bool
    counselor_id: UUID | None


def person_standing_of(user: User) -> PersonStanding:
    # A person saved without a profile (possible from the admin) has no counselor.
    profile = getattr(user, "profile", None)
    return PersonStanding(user.role, user.is_active, profile.counselor_id if profile is not None else None)


def people_standing(*, ids: Iterable[UUID]) -> dict[UUID, PersonStanding]:
    """The standing of every listed person that exists, in one written-out query: on the booking's path, the
    ORM's compiling of the same read cost more CPU than PostgreSQL's running it."""
    user, profile = User._meta, Profile._meta
    sql = (
        f'SELECT u."id", u."role", u."is_active", p."counselor_id" FROM "{user.db_table}" u '
        f'LEFT JOIN "{profile.db_table}" p ON p."user_id" = u."id" WHERE u."id" = ANY(%s)'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(set(ids))])
        return {row[0]: PersonStanding(row[1], row[2], row[3]) for row in cursor.fetchall()}


def meeting_host_id_for(*, user_id: UUID, provider: str) -> str:
    """Who hosts the person's meetings at `provider`: their Feishu open_id or Zoom user, else the
    configured default. Empty when neither is known."""
    column = {"feishu": "feishu_open_id", "zoom": "zoom_user_id"}[provider]
    own = Profile.objects.filter(user_id=user_id).values_list(column, flat=True).first()
    default = {"feishu": settings.FEISHU_DEFAULT_OWNER_OPEN_ID, "zoom": settings.ZOOM_DEFAULT_HOST_ID}[provider]
    return own or default


def students_of_counselor(*, counselor: User) -> list[User]:
    """The students assigned to `counselor`, by name: whom the counselor may book for."""
    return list(
        User.objects.select_related("profile")
        .filter(role=Role.STUDENT, profile__counselor=counselor, is_active=True)
        .order_by("first_name", "last_name", "username")
    )


def mentors_list() -> list[User]:
    """Every active mentor, by name."""
    return list(
        User.objects.select_related("profile")
        .filter(role=Role.MENTOR, is_active=True)
        .order_by("first_name", "last_name", "username")
    )


def person_time_zone(*, user: User) -> str:
    """The IANA time zone the person reads times in (their profile's), UTC when they have no profile."""
    return Profile.objects.filter(user_id=user.id).values_list("time_zone", flat=True).first() or "UTC"
