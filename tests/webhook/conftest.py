"""Fixtures for the webhook tests; the doubles themselves live in webhook_doubles.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from webhook_doubles import MakeWebhook, Webhook, build_webhook


@pytest.fixture
def make_webhook() -> Iterator[MakeWebhook]:
    made: list[Webhook] = []

    def make(**overrides: Any) -> Webhook:
        webhook = build_webhook(**overrides)
        made.append(webhook)
        return webhook

    yield make
    for webhook in made:
        webhook.close()


@pytest.fixture
def webhook(make_webhook: MakeWebhook) -> Webhook:
    return make_webhook()
