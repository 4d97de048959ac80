"""The operators' one queue: every piece of provider work that gave up and waits for a person, of every kind, in
one admin page, with the same two actions for each (DESIGN.md "One way to call the outside world").

Each app registers how its kind is worked (`queue_surface_register` in its admin module): how a row is retried,
how it is resolved with a note, and the permission each needs. The page lists the rows the engine counts for the
`booking_provider_work_needs_person` gauge (`WorkKind.needs_person`), newest first, with a link to the row's own
admin page where the kind-specific actions (re-provision, ...) live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.text import Truncator

from booking_project.provider_work import WORK_KINDS

# Rows listed per kind: a queue longer than this is an outage, worked from the kind's own admin list.
ROWS_PER_KIND = 200


@dataclass(frozen=True)
class QueueSurface:
    """How a person works one kind's rows: `retry(row, user)` and `resolve(row, user, note)` answer whether
    they did anything; each needs its permission (app_label.codename)."""

    kind: str
    retry: Callable[[Any, Any], bool]
    resolve: Callable[[Any, Any, str], bool]
    retry_permission: str
    resolve_permission: str
    retry_label: str = "Retry"


SURFACES: dict[str, QueueSurface] = {}


def queue_surface_register(surface: QueueSurface) -> QueueSurface:
    SURFACES[surface.kind] = surface
    return surface


@dataclass(frozen=True)
class QueueRow:
    kind: str
    label: str
    key: str
    session_id: str
    reason: str
    since: Any
    url: str
    retry_label: str


def queue_rows(user) -> list[QueueRow]:
    """Every row waiting for a person, of every kind with a surface the user may view, newest first."""
    rows: list[QueueRow] = []
    for name, surface in SURFACES.items():
        kind = WORK_KINDS[name]
        if kind.needs_person is None or not _may_view(user, kind.model):
            continue
        for row in kind.model.objects.filter(**kind.needs_person).order_by("-manual_intervention_at")[:ROWS_PER_KIND]:
            key = getattr(row, kind.key)
            rows.append(
                QueueRow(
                    kind=name,
                    label=kind.label,
                    key=str(key),
                    session_id=str(getattr(row, "session_id", "") or ""),
                    reason=Truncator(row.manual_intervention_reason).chars(300),
                    since=row.manual_intervention_at,
                    url=_change_url(kind.model, row.pk),
                    retry_label=surface.retry_label,
                )
            )
    return sorted(rows, key=lambda r: r.since.timestamp() if r.since else 0.0, reverse=True)


def _may_view(user, model) -> bool:
    opts = model._meta
    return user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or user.has_perm(
        f"{opts.app_label}.change_{opts.model_name}"
    )


def _change_url(model, pk) -> str:
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
    except NoReverseMatch:
        return ""


def work_queue_view(request: HttpRequest) -> HttpResponse:
    """GET: the queue. POST `action` (retry | resolve), `rows` ("kind:key", several), `note` (resolve)."""
    if request.method == "POST":
        return _act(request)
    return TemplateResponse(
        request,
        "admin/work_queue.html",
        {
            **admin.site.each_context(request),
            "title": "Work waiting for a person",
            "rows": queue_rows(request.user),
            "can_retry": {k: request.user.has_perm(s.retry_permission) for k, s in SURFACES.items()},
            "can_resolve": {k: request.user.has_perm(s.resolve_permission) for k, s in SURFACES.items()},
        },
    )


def _act(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action")
    note = request.POST.get("note", "").strip()
    chosen = [value.partition(":") for value in request.POST.getlist("rows")]
    chosen = [(kind, key) for kind, _, key in chosen if kind in SURFACES and key]
    if action not in ("retry", "resolve") or not chosen:
        messages.error(request, "Choose rows and an action.")
        return HttpResponseRedirect(request.path)
    for kind, _ in chosen:
        surface = SURFACES[kind]
        needed = surface.retry_permission if action == "retry" else surface.resolve_permission
        if not request.user.has_perm(needed):
            # Nothing is done when any chosen row is not the user's to work: a partial action would surprise.
            raise PermissionDenied(f"{action} of {WORK_KINDS[kind].label} needs the permission {needed}.")
    if action == "resolve" and not note:
        messages.error(request, "Write a note saying what was done.")
        return HttpResponseRedirect(request.path)
    for kind, key in chosen:
        work_kind = WORK_KINDS[kind]
        row = work_kind.model.objects.filter(**{work_kind.key: key}).first()
        if row is None:
            continue
        surface = SURFACES[kind]
        done = surface.retry(row, request.user) if action == "retry" else surface.resolve(row, request.user, note)
        level = messages.SUCCESS if done else messages.WARNING
        verdict = ("retried" if action == "retry" else "resolved") if done else "not changed (see its last error)"
        messages.add_message(request, level, f"{work_kind.label} {key}: {verdict}.")
    return HttpResponseRedirect(request.path)
