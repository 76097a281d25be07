"""WebSocket consumers (Channels). Thin: who may listen, and passing messages on."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from . import live, roles


class QueueConsumer(AsyncJsonWebsocketConsumer):
    """Tells an open queue page that the queue changed: `{"event": "claimed", "task": 12}`.

    Only reviewers, leads and admins may listen. Messages carry ids only; the page fetches what it
    shows through the ordinary, permission-checked views.
    """

    watcher: asyncio.Task | None = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(roles.has_role)(user, *roles.ROLES):
            await self.close()  # before accept: the handshake is refused with HTTP 403
            return
        await self.channel_layer.group_add(live.QUEUE_GROUP, self.channel_name)
        await self.accept()
        if not live.layer_spans_processes(self.channel_layer):
            self.heard_added: set[int] = set()
            watch = await database_sync_to_async(live.QueueWatch)()
            self.watcher = asyncio.create_task(self._watch_database(watch))

    async def disconnect(self, code):
        if self.watcher is not None:
            self.watcher.cancel()
        await self.channel_layer.group_discard(live.QUEUE_GROUP, self.channel_name)

    async def queue_changed(self, message):
        if self.watcher is not None and message["event"] == "added":
            self.heard_added.add(message["task"])  # the watch will see it too: say it once
        await self.send_json({"event": message["event"], "task": message["task"]})

    async def _watch_database(self, watch: live.QueueWatch):
        """The embedded default's stand-in for hearing the workers (see `live.QueueWatch`)."""
        while True:
            await asyncio.sleep(settings.COEFVQ_QUEUE_WATCH_S)
            for event, task_id in await database_sync_to_async(watch.changes)():
                if not (event == "added" and task_id in self.heard_added):
                    await self.send_json({"event": event, "task": task_id})
            self.heard_added = {task_id for task_id in self.heard_added if task_id > watch.last_task_id}
