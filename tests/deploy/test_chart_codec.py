"""The chart's payload encryption: off by default; when on, every process that talks to Temporal gets the
keys Secret and the key id, and what it gets is exactly what `load_keyring` reads; the codec server is
optional, holds no Temporal credentials and refuses to render without anyone allowed to call it."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from test_chart import CHART, MINIMAL, by_kind, containers, named

from activities.config import CodecSettings
from deploy.render import RenderError, load_values, objects, render
from workers.codec.keys import load_keyring

CODEC_VALUES = CHART / "ci" / "codec-values.yaml"
TEMPORAL_PODS = {"-worker", "-gpu-worker", "-webhook", "-setup"}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {env["name"]: env.get("value", "") for env in container.get("env", [])}


def test_encryption_is_off_by_default() -> None:
    objs = objects(render(CHART, MINIMAL))
    for obj, container in containers(objs):
        assert not any(name.startswith("SPEC2SHIP_CODEC") for name in env_of(container)), obj["metadata"]["name"]
        volumes = obj["spec"]["template"]["spec"].get("volumes", [])
        assert "codec-keys" not in {volume["name"] for volume in volumes}
    assert not [obj for obj in objs if "codec" in obj["metadata"]["name"]]


@pytest.fixture(scope="module")
def codec_objects() -> list[dict[str, Any]]:
    return objects(render(CHART, load_values([CODEC_VALUES])))


def test_every_process_that_talks_to_temporal_gets_the_keys(codec_objects: list[dict[str, Any]]) -> None:
    seen = set()
    for obj, container in containers(codec_objects):
        suffix = obj["metadata"]["name"].removeprefix("spec2ship")
        env = env_of(container)
        assert env["SPEC2SHIP_CODEC_KEY_ID"] == "2025-06", suffix
        mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
        assert mounts["codec-keys"]["mountPath"] == env["SPEC2SHIP_CODEC_KEYS_DIR"]
        assert mounts["codec-keys"]["readOnly"] is True
        [volume] = [v for v in obj["spec"]["template"]["spec"]["volumes"] if v["name"] == "codec-keys"]
        assert volume["secret"] == {"secretName": "spec2ship-codec-keys"}, "the whole Secret: every key decrypts"
        seen.add(suffix)
    assert seen == TEMPORAL_PODS | {"-codec-server"}


def test_what_the_chart_mounts_is_what_the_processes_read(codec_objects: list[dict[str, Any]],
                                                         tmp_path: Path) -> None:
    """The Secret as Kubernetes would mount it, read through the environment the chart gives the worker."""
    env = env_of(named(codec_objects, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0])
    for number, key_id in enumerate(("2024-12", "2025-06")):
        (tmp_path / key_id).write_text(base64.b64encode(bytes([number]) * 32).decode() + "\n")
    env["SPEC2SHIP_CODEC_KEYS_DIR"] = str(tmp_path)
    keyring = load_keyring(CodecSettings.from_env(env))
    assert keyring is not None and keyring.current == "2025-06" and keyring.ids == ["2024-12", "2025-06"]


def test_the_codec_server_serves_the_ui_with_the_keys_and_no_temporal_credentials(
    codec_objects: list[dict[str, Any]],
) -> None:
    deployment = named(codec_objects, "Deployment", "-codec-server")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    assert args[:2] == ["codec", "serve"]
    assert args[args.index("--cors-origin") + 1] == "https://temporal.example.com"
    assert args[args.index("--trusted-origin") + 1] == "https://temporal.example.com"
    env = env_of(container)
    assert env["TEMPORAL_NAMESPACE"] == "spec2ship"
    assert env["SPEC2SHIP_CODEC_SERVER_TOKENS_FILE"] == "/etc/spec2ship/codec-tokens/tokens"
    assert not {"TEMPORAL_ADDRESS", "TEMPORAL_API_KEY", "TEMPORAL_TLS_CERT"} & set(env), "it never calls Temporal"
    assert {volume["name"] for volume in pod["volumes"]} == {"data", "tmp", "codec-keys", "codec-tokens"}
    service = named(codec_objects, "Service", "-codec-server")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    [rule] = named(codec_objects, "Ingress", "-codec-server")["spec"]["rules"]
    assert rule["host"] == "codec.temporal.example.com"
    assert by_kind(codec_objects, "Ingress")[0]["spec"]["tls"][0]["secretName"] == "spec2ship-codec-tls"


@pytest.mark.parametrize(("codec", "named_field"), [
    ({"enabled": True, "currentKeyId": "2025-06"}, "/codec/keys/secretName"),
    ({"enabled": True, "keys": {"secretName": "keys"}}, "/codec/currentKeyId"),
    ({"enabled": True, "keys": {"secretName": "keys"}, "currentKeyId": "2025:06"}, "/codec/currentKeyId"),
    ({"server": {"enabled": True, "trustedOrigins": ["https://ui.example.com"]}}, "/codec/enabled"),
    ({"enabled": True, "keys": {"secretName": "keys"}, "currentKeyId": "k1",
      "server": {"corsOrigins": ["https://ui.example.com/path"]}}, "/codec/server/corsOrigins/0"),
    ({"enabled": True, "keys": {"secretName": "keys"}, "currentKeyId": "k1", "server": {"enabled": True}},
     "set codec.server.tokens.secretName or codec.server.trustedOrigins"),
])
def test_a_codec_value_that_cannot_work_fails_with_the_field_named(codec: dict[str, Any], named_field: str) -> None:
    with pytest.raises(RenderError, match=re.escape(named_field)):
        render(CHART, {**MINIMAL, "codec": codec})
