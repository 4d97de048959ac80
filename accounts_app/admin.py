from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts_app.models import Profile, User


class ProfileInline(admin.StackedInline):
    model = Profile
    fk_name = "user"
    can_delete = False
    autocomplete_fields = ["counselor"]


@admin.register(User)
class PersonAdmin(UserAdmin):
    list_display = ["username", "id", "role", "email", "first_name", "last_name", "is_active", "date_joined"]
    list_filter = ["role", "is_staff", "is_active"]
    search_fields = ["id", "username", "email", "first_name", "last_name"]
    ordering = ["username"]
    inlines = [ProfileInline]
    fieldsets = UserAdmin.fieldsets + (("Booking", {"fields": ["role"]}),)
    add_fieldsets = UserAdmin.add_fieldsets + (("Booking", {"fields": ["role"]}),)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # The inline saves nothing when left at its defaults; every person still gets a profile.
        Profile.objects.get_or_create(user=form.instance)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "time_zone", "calendar_provider", "counselor", "feishu_open_id", "zoom_user_id"]
    list_filter = ["calendar_provider", "time_zone"]
    search_fields = ["user__username", "user__email", "feishu_open_id", "zoom_user_id"]
    list_select_related = ["user", "counselor"]
    autocomplete_fields = ["user", "counselor"]
