"""Fixtures for the webhook tests; the doubles themselves live in webhook_doubles.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from webhook_doubles import MakeWebhook, Webhook, build_webhook


@pytest.fixture
def make_webhook() -> Iterator[MakeWebhook]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> Webhook:
        made = build_webhook(**overrides)
        clients.append(made.client)
        return made

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def webhook(make_webhook: MakeWebhook) -> Webhook:
    return make_webhook()
