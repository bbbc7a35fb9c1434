"""The GitHub webhook server: verified deliveries in, spooled on disk, answered; a drain in the same
process turns them into Temporal workflow starts, signals and updates.

`app.py` (HTTP) -> `triage.py` (what a delivery asks for, no I/O) -> `spool.py` (SQLite, durable before
the answer) -> `drain.py` (in the background, with retries) -> `execute.py` (Temporal and GitHub).
"""
