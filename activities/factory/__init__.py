"""Scheduled factory runs: find the issues labelled for spec2ship and start their runs, a few at a time."""
