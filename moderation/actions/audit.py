"""The audit log: who did what to which object, appended in the transaction that made the change."""

from __future__ import annotations

import json

from ..models import AuditEntry


def record_audit(actor, action: str, target, summary: str, **data) -> AuditEntry:
    """Append who did what to which object. Call inside the transaction that made the change,
    so the change and its record commit together or not at all."""
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEntry.objects.create(
        actor_id=actor.pk if authenticated else None, actor_name=actor.get_username() if authenticated else "",
        action=action, target_type=target._meta.model_name, target_id=str(target.pk), summary=summary,
        data=json.loads(json.dumps(data, default=str)),
    )
