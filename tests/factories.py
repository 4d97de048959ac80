"""factory-boy factories, one per model a test needs to set up."""

from datetime import timedelta

import factory
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts_app.models import Profile, Role, User
from holds_app.models import Entitlement


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = Role.STUDENT
    profile = factory.RelatedFactory("tests.factories.ProfileFactory", factory_related_name="user")


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    user = factory.SubFactory(UserFactory, profile=None)
    time_zone = "Asia/Shanghai"
    feishu_open_id = factory.LazyAttribute(lambda p: f"ou_{p.user.username}")
    zoom_user_id = factory.LazyAttribute(lambda p: p.user.email)


class CounselorFactory(UserFactory):
    role = Role.COUNSELOR


class MentorFactory(UserFactory):
    role = Role.MENTOR


class StaffFactory(UserFactory):
    role = Role.STAFF
    is_staff = True


def student_for(counselor: User, **kwargs) -> User:
    student = UserFactory(role=Role.STUDENT, profile=None, **kwargs)
    ProfileFactory(user=student, counselor=counselor)
    return student


class EntitlementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Entitlement

    student = factory.SubFactory(UserFactory)
    session_type = "regular_mentoring"
    units_bought = 10


def token_for(user: User) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def future(hours: float = 48, minutes: int = 0):
    """A whole-minute time in the future, inside the booking horizon."""
    moment = timezone.now().replace(second=0, microsecond=0) + timedelta(hours=hours, minutes=minutes)
    return moment
