"""The GitHub webhook: verified deliveries are spooled on disk and answered; a drain, by default a child
process of the server, turns them into Temporal workflow starts, signals and updates.

`app.py` (HTTP) -> `triage.py` (what a delivery asks for, no I/O) -> `spool.py` (SQLite, durable before
the answer) -> `drain.py` (with retries, in order per run; `drain_process.py` runs and supervises it) ->
`execute.py` (Temporal and GitHub).
"""
