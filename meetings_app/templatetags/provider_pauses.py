from django import template

from meetings_app.selectors import provider_pauses

register = template.Library()


@register.simple_tag
def pausable_providers():
    """Every pausable provider's pause row, for the admin's index (operators see at once what is paused)."""
    return provider_pauses()
