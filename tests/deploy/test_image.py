"""The image from deploy/Dockerfile, built and run: `spec2ship --help`, then a worker against the dev server.

It needs a container engine that answers (Docker, or Podman's Docker-compatible socket) and the pinned
base image, present locally or pullable. Where either is missing the test skips and says which; it is
never silently green. The container runs as the chart runs it: non-root, read-only root filesystem,
/data and /tmp writable, host network so it reaches the dev server on loopback.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from doubles.processes import free_port, get
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
BASE_IMAGE = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
TAG = "spec2ship-image-test:latest"

pytestmark = pytest.mark.slow


def _engine() -> Any:
    """A client of a running engine with the base image at hand; otherwise skip, saying what is missing."""
    import docker
    from docker.errors import DockerException, ImageNotFound

    try:
        client = docker.from_env()
        client.ping()
    except DockerException as error:
        pytest.skip(f"no container engine answers (DOCKER_HOST or the local socket): {error}; the image test "
                    "needs Docker or Podman's Docker-compatible socket")
    try:
        client.images.get(BASE_IMAGE)
    except ImageNotFound:
        try:
            client.images.pull(BASE_IMAGE)
        except DockerException as error:
            pytest.skip(f"base image {BASE_IMAGE} is not present in the engine and cannot be pulled ({error}); "
                        "import it locally to run the image test")
    return client


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    client = _engine()
    client.images.build(path=str(ROOT), dockerfile=str(DOCKERFILE.relative_to(ROOT)), target="runtime", tag=TAG,
                        rm=True)
    yield TAG
    client.images.remove(TAG, force=True)


def test_the_image_runs_the_cli_as_its_entry_point(image: str) -> None:
    import docker

    output = docker.from_env().containers.run(image, ["--help"], remove=True, read_only=True,
                                              tmpfs={"/tmp": "", "/data": ""}).decode()
    for command in ("worker", "gpu-worker", "webhook", "setup"):
        assert command in output, output


async def test_a_worker_in_the_image_polls_the_dev_server_and_stops_on_sigterm(
    image: str, dev_env: WorkflowEnvironment
) -> None:
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    testcontainers_config.ryuk_disabled = True  # the reaper is another image to pull; the test stops its own
    port = free_port()
    container = (
        DockerContainer(image)
        .with_command(["worker", "--data-dir", "/data", "--health-port", str(port), "--shutdown-grace", "10"])
        .with_env("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
        .with_env("SPEC2SHIP_TASK_QUEUE", f"image-{uuid.uuid4()}")
        .with_kwargs(network_mode="host", read_only=True, tmpfs={"/tmp": "", "/data": ""}, user="10001:10001")
    )
    container.start()
    try:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline:
            ready = get(f"http://127.0.0.1:{port}/readyz")
            if ready is not None and ready.status_code == 200:
                break
            await asyncio.sleep(0.5)
        logs = b"".join(container.get_logs()).decode(errors="replace")
        assert ready is not None and ready.status_code == 200, logs[-3000:]
        wrapped = container.get_wrapped_container()
        wrapped.kill(signal="SIGTERM")  # what the kubelet sends; tini forwards it to spec2ship
        result = wrapped.wait(timeout=30)
        assert result["StatusCode"] == 0, b"".join(container.get_logs()).decode(errors="replace")[-3000:]
    finally:
        container.stop()


def test_the_image_copies_every_package_the_project_installs() -> None:
    """No engine needed: the Dockerfile and .dockerignore let through each package pyproject.toml installs,
    so adding a top-level package cannot silently leave it out of the image."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = set(re.findall(r"^COPY (\w+) \1$", DOCKERFILE.read_text(), re.MULTILINE))
    allowed = {line.strip("!/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert packages == copied, f"pyproject installs {sorted(packages)}, the Dockerfile copies {sorted(copied)}"
    assert packages | {"pyproject.toml", "README.md"} <= allowed
