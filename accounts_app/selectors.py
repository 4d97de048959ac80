from collections.abc import Iterable
from uuid import UUID

from django.conf import settings

from accounts_app.models import Profile, User


def people_get_by_ids(*, ids: Iterable[UUID]) -> dict[UUID, User]:
    """Every listed person that exists, with their profile, in one query."""
    return {u.id: u for u in User.objects.select_related("profile").filter(id__in=set(ids))}


def meeting_host_id_for(*, user_id: UUID, provider: str) -> str:
    """Who hosts the person's meetings at `provider`: their Feishu open_id or Zoom user, else the
    configured default. Empty when neither is known."""
    column = {"feishu": "feishu_open_id", "zoom": "zoom_user_id"}[provider]
    own = Profile.objects.filter(user_id=user_id).values_list(column, flat=True).first()
    default = {"feishu": settings.FEISHU_DEFAULT_OWNER_OPEN_ID, "zoom": settings.ZOOM_DEFAULT_HOST_ID}[provider]
    return own or default
