"""What every HTTP chat provider shares: the key from the environment, one retried POST, timing and
price. A provider only says where to post, how to authenticate, and how to map the wire format."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

import httpx

from activities.agents.http_retry import CallContext, RetryPolicy, Sleep, api_key_for, client_scope, send_with_retry
from activities.agents.pricing import cost_usd
from activities.agents.registry import ModelEntry
from contracts.agents import ModelRequest, ModelTurn


class HttpChatProvider:
    """Base of the OpenAI-compatible and Anthropic providers; retries are those of `http_retry`."""

    name = "http"
    path = ""

    def __init__(
        self,
        entry: ModelEntry,
        *,
        client: httpx.AsyncClient | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.entry = entry
        self._client = client
        self._env = env
        self._sleep = sleep

    def headers(self, key: str | None) -> dict[str, str]:
        raise NotImplementedError

    def body(self, request: ModelRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, response: httpx.Response) -> ModelTurn:
        raise NotImplementedError

    async def complete(self, request: ModelRequest) -> ModelTurn:
        entry = self.entry
        url = f"{entry.endpoint}{self.path}"
        context = CallContext(model_name=entry.name, provider=self.name, url=url, api_key_env=entry.api_key_env)
        key = api_key_for(context, self._env if self._env is not None else os.environ)
        policy = RetryPolicy(max_retries=entry.max_retries, deadline_s=entry.timeout_s)
        started = time.monotonic()
        async with client_scope(self._client) as client:
            response = await send_with_retry(
                client, "POST", url, json_body=self.body(request), headers=self.headers(key),
                policy=policy, context=context, secrets=(key,) if key else (), sleep=self._sleep or asyncio.sleep,
            )
        turn = self.parse(response)
        turn.duration_s = time.monotonic() - started
        turn.cost_usd = cost_usd(turn.usage, entry.price)
        return turn
