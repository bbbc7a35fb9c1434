"""On the real dev server: with keys configured, a history holds no plaintext of a secret that went
through a workflow's input, memo, activity input and result, and an activity failure's message; a
client with the keys (made by `connect`, as every process makes it) reads it all back, also after the
key rotated. The control run without keys shows the same check finds the secret when it is there.
The codec server is checked here against the real `temporal` CLI, which speaks the protocol to it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import pytest_asyncio
from doubles.http_server import served
from pydantic import BaseModel, SecretStr
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import CodecSettings, TemporalSettings
from contracts.names import SERVICE_KEY
from workers.codec.access import CodecAccess
from workers.codec.encryption import EncryptionCodec, KeyMissingError
from workers.codec.keys import load_keyring
from workers.codec.server import create_codec_app
from workers.temporal_client import connect, find_binary

K1 = base64.b64encode(bytes(range(32))).decode()
K2 = base64.b64encode(bytes(range(100, 132))).decode()
TOKEN = "operator-token-0123456789abcdef"
SERVICE = "greeter-service"


class Probe(BaseModel):
    secret: str


class ProbeResult(BaseModel):
    echoed: str
    failure: str


@activity.defn(name="codec_probe_echo")
async def echo(probe: Probe) -> Probe:
    return probe


@activity.defn(name="codec_probe_refuse")
async def refuse(probe: Probe) -> None:
    raise ApplicationError(f"refused {probe.secret}", non_retryable=True)


@workflow.defn(name="CodecProbe", sandboxed=False)
class CodecProbe:
    """Sends the secret through every kind of payload, and a search attribute through what is not one."""

    @workflow.run
    async def run(self, probe: Probe) -> ProbeResult:
        workflow.upsert_memo({"seen": probe.secret})
        workflow.upsert_search_attributes([SERVICE_KEY.value_set(SERVICE)])
        echoed = await workflow.execute_activity(echo, probe, start_to_close_timeout=timedelta(seconds=30))
        try:
            await workflow.execute_activity(refuse, probe, start_to_close_timeout=timedelta(seconds=30),
                                            retry_policy=RetryPolicy(maximum_attempts=1))
        except ActivityError as error:
            assert isinstance(error.cause, ApplicationError)
            return ProbeResult(echoed=echoed.secret, failure=error.cause.message)
        raise ApplicationError("the refusing activity did not fail")


def codec_settings(keys: str, current: str | None = None) -> TemporalSettings:
    return TemporalSettings(codec=CodecSettings(keys=SecretStr(keys), key_id=current))


async def client_for(env: WorkflowEnvironment, settings: TemporalSettings) -> Client:
    target = env.client.service_client.config.target_host
    return await connect(settings.model_copy(update={"address": target, "namespace": env.client.namespace}),
                         interceptors=[])


@dataclass
class Run:
    workflow_id: str
    secret: str
    result: ProbeResult
    history: WorkflowHistory


async def probe_run(env: WorkflowEnvironment, client: Client) -> Run:
    """One CodecProbe run by a worker on `client`; its history fetched by a client WITHOUT the codec."""
    secret, queue = f"s2s-secret-{uuid.uuid4().hex}", f"codec-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[CodecProbe], activities=[echo, refuse]):
        handle = await client.start_workflow(CodecProbe.run, Probe(secret=secret), id=f"codec-probe-{queue}",
                                             task_queue=queue, memo={"started-with": secret})
        result = await handle.result()
    history = await env.client.get_workflow_handle(handle.id).fetch_history()
    return Run(handle.id, secret, result, history)


def raw(history: WorkflowHistory) -> bytes:
    """Every event as protobuf bytes: payload data appears here as it is stored, not base64'd as in JSON."""
    return b"".join(event.SerializeToString() for event in history.events)


@pytest_asyncio.fixture(scope="module")
async def encrypted_run(dev_env: WorkflowEnvironment) -> Run:
    return await probe_run(dev_env, await client_for(dev_env, codec_settings(f"k1:{K1}")))


async def test_the_history_holds_no_plaintext_of_the_secret(encrypted_run: Run) -> None:
    assert encrypted_run.result == ProbeResult(echoed=encrypted_run.secret, failure=f"refused {encrypted_run.secret}")
    stored = raw(encrypted_run.history)
    assert encrypted_run.secret.encode() not in stored
    assert b"refused" not in stored, "the failure's message travels encrypted too"
    assert stored.count(b"binary/encrypted") >= 6, "input, memos, activity inputs and result, failure"
    [failed] = [event.activity_task_failed_event_attributes for event in encrypted_run.history.events
                if event.HasField("activity_task_failed_event_attributes")]
    assert failed.failure.message == "Encoded failure"


async def test_what_the_codec_does_not_protect_stays_readable(encrypted_run: Run, dev_env: WorkflowEnvironment) -> None:
    """Search attributes are indexed by the server, so they are never encrypted (docs say so)."""
    assert SERVICE.encode() in raw(encrypted_run.history)
    described = await dev_env.client.get_workflow_handle(encrypted_run.workflow_id).describe()
    assert described.typed_search_attributes.get(SERVICE_KEY) == SERVICE


async def test_without_keys_the_same_check_finds_the_secret(dev_env: WorkflowEnvironment) -> None:
    """The control: nothing configured, nothing changes, and the history holds the secret in the clear."""
    run = await probe_run(dev_env, await client_for(dev_env, TemporalSettings()))
    assert run.secret.encode() in raw(run.history)
    assert b"binary/encrypted" not in raw(run.history)


async def test_a_client_with_the_keys_reads_everything_back_also_after_rotation(
    encrypted_run: Run, dev_env: WorkflowEnvironment
) -> None:
    rotated = await client_for(dev_env, codec_settings(f"k1:{K1},k2:{K2}", current="k2"))
    assert rotated.data_converter.payload_codec is not None
    handle = rotated.get_workflow_handle_for(CodecProbe.run, encrypted_run.workflow_id)
    assert await handle.result() == encrypted_run.result
    memo = await (await handle.describe()).memo()
    assert memo == {"started-with": encrypted_run.secret, "seen": encrypted_run.secret}
    without_k1 = await client_for(dev_env, codec_settings(f"k2:{K2}"))
    with pytest.raises(KeyMissingError, match="key id 'k1'"):
        await without_k1.get_workflow_handle(encrypted_run.workflow_id).result()


@pytest_asyncio.fixture
async def codec_server_url(dev_env: WorkflowEnvironment) -> AsyncIterator[str]:
    keyring = load_keyring(CodecSettings(keys=SecretStr(f"k1:{K1}")))
    assert keyring is not None
    access = CodecAccess(namespace=dev_env.client.namespace, tokens=[SecretStr(TOKEN)])
    async with served(create_codec_app(EncryptionCodec(keyring), access)) as http:
        yield str(http.base_url).rstrip("/")


async def temporal_show(dev_env: WorkflowEnvironment, workflow_id: str, *options: str) -> tuple[int, str]:
    """`temporal workflow show` as an operator runs it (its summary prints the decoded result); awaited, so
    the codec server in this event loop can answer it."""
    binary = find_binary("temporal")
    assert binary is not None
    process = await asyncio.create_subprocess_exec(
        str(binary), "workflow", "show", "--workflow-id", workflow_id, "--command-timeout", "3s",
        "--address", dev_env.client.service_client.config.target_host, "--namespace", dev_env.client.namespace,
        *options, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_temporal_cli_decodes_through_the_codec_server(
    encrypted_run: Run, dev_env: WorkflowEnvironment, codec_server_url: str
) -> None:
    code, shown = await temporal_show(dev_env, encrypted_run.workflow_id, "--codec-endpoint", codec_server_url,
                                      "--codec-auth", f"Bearer {TOKEN}")
    assert code == 0, shown
    assert f'"failure":"refused {encrypted_run.secret}"' in shown
    code, shown = await temporal_show(dev_env, encrypted_run.workflow_id)
    assert code == 0, shown
    assert encrypted_run.secret not in shown and "binary/encrypted" in shown


async def test_the_temporal_cli_without_a_token_is_refused_by_the_codec_server(
    encrypted_run: Run, dev_env: WorkflowEnvironment, codec_server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spec2ship.codec"):
        code, shown = await temporal_show(dev_env, encrypted_run.workflow_id, "--codec-endpoint", codec_server_url)
    assert code != 0 and encrypted_run.secret not in shown
    refusals = [record for record in caplog.records if record.getMessage() == "codec request refused"]
    assert refusals and {getattr(record, "status", None) for record in refusals} == {401}
    assert {getattr(record, "namespace", None) for record in refusals} == {dev_env.client.namespace}
