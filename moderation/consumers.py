"""WebSocket consumers (Channels). Thin: who may listen, and passing messages on."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from . import live, roles

# "added" task ids an embedded-default consumer remembers having announced: both the in-process
# message and the database watch may tell of the same task, in either order.
ANNOUNCED_MEMORY = 1024


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
            self.announced_added: dict[int, None] = {}  # an ordered set, oldest first
            watch = await database_sync_to_async(live.QueueWatch)()
            self.watcher = asyncio.create_task(self._watch_database(watch))

    async def disconnect(self, code):
        if self.watcher is not None:
            self.watcher.cancel()
        await self.channel_layer.group_discard(live.QUEUE_GROUP, self.channel_name)

    async def queue_changed(self, message):
        if message["event"] == "added" and not self._first_announcement(message["task"]):
            return
        await self.send_json({"event": message["event"], "task": message["task"]})

    def _first_announcement(self, task_id: int) -> bool:
        """Whether this "added" is news to the page. Only the embedded default hears a task twice."""
        if self.watcher is None:
            return True
        if task_id in self.announced_added:
            return False
        self.announced_added[task_id] = None
        if len(self.announced_added) > ANNOUNCED_MEMORY:
            del self.announced_added[next(iter(self.announced_added))]
        return True

    async def _watch_database(self, watch: live.QueueWatch):
        """The embedded default's stand-in for hearing the workers (see `live.QueueWatch`)."""
        while True:
            await asyncio.sleep(settings.COEFVQ_QUEUE_WATCH_S)
            for event, task_id in await database_sync_to_async(watch.changes)():
                if event != "added" or self._first_announcement(task_id):
                    await self.send_json({"event": event, "task": task_id})
