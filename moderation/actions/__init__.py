"""Business operations, one module per domain. Views, the API, commands, admin and tasks all call
these; import the function from its domain module (`from moderation.actions.ingest import do_ingest`).

`check_*` validates and raises `validation.ActionError`; `do_*` changes state, records an audit
event and schedules follow-up work after the transaction commits. Follow-up work is enqueued by
task name (`enqueue`), so no module here imports the tasks that call it.
"""
