"""Runnable processes: the CPU worker, the GPU worker, the webhook server, the CLI and the dev stack."""
