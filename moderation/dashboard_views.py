"""The leads' dashboard page and its CSV exports. Thin: the numbers come from `dashboard`, the
charts from `dashboard_charts`."""

from __future__ import annotations

import csv
import dataclasses
from datetime import datetime

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import dashboard, dashboard_cache, roles
from .models import Policy


class DashboardFilter(forms.Form):
    policy = forms.ModelChoiceField(Policy.objects.order_by("-is_default", "name"), to_field_name="slug",
                                    required=False, empty_label=None)
    days = forms.TypedChoiceField(choices=[(d, f"last {d} day{'s' if d > 1 else ''}") for d in dashboard.WINDOW_DAYS],
                                  coerce=int, required=False, empty_value=7)

    def selection(self) -> tuple[Policy, dashboard.Window]:
        """The chosen policy and window; anything missing or unknown falls back to the default
        policy and a week."""
        data = self.cleaned_data if self.is_valid() else {}
        policy = data.get("policy") or self.fields["policy"].queryset.first()
        if policy is None:
            raise Http404("There is no policy yet.")
        return policy, dashboard.Window.last_days(data.get("days") or 7)


def _require_lead(user) -> None:
    if not roles.can_see_dashboard(user):
        raise PermissionDenied("The dashboard is for leads and admins.")


@login_required
@require_GET
def dashboard_page(request):
    _require_lead(request.user)
    selection = DashboardFilter(request.GET)
    policy, window = selection.selection()
    data = dashboard_cache.build(policy, window)
    return render(request, "moderation/dashboard.html", {
        "filter": selection, "data": data, "charts": dashboard_cache.charts(data),
        "tables": dashboard.TABLES, "query": f"policy={policy.slug}&days={round(window.days)}",
    })


class _Echo:
    """A file-like object whose write returns the line, so csv.writer feeds a streaming response."""

    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _csv_lines(rows: list):
    writer = csv.writer(_Echo())
    if rows:
        yield writer.writerow([f.name for f in dataclasses.fields(rows[0])])
    for row in rows:
        yield writer.writerow([_cell(getattr(row, f.name)) for f in dataclasses.fields(row)])


@login_required
@require_GET
def dashboard_export(request, name: str):
    _require_lead(request.user)
    table = dashboard.TABLES.get(name)
    if table is None:
        raise Http404(f"No table named {name!r}.")
    policy, window = DashboardFilter(request.GET).selection()
    filename = f"{policy.slug}-{name}-{round(window.days)}d.csv"
    return StreamingHttpResponse(_csv_lines(table(policy, window)), content_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"'})
