"""GitHub's documented signature procedure, checked with its own test vector."""

from __future__ import annotations

import pytest

from workers.webhook.signature import sign, verify

# From GitHub's "Validating webhook deliveries" documentation.
DOC_SECRET = "It's a Secret to Everybody"
DOC_BODY = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_sign_matches_githubs_documented_vector() -> None:
    assert sign(DOC_SECRET, DOC_BODY) == DOC_SIGNATURE
    assert sign(DOC_SECRET.encode(), DOC_BODY) == DOC_SIGNATURE


def test_verify_accepts_the_documented_signature() -> None:
    assert verify(DOC_SECRET, DOC_BODY, DOC_SIGNATURE)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        DOC_SIGNATURE.removeprefix("sha256="),  # no algorithm prefix
        "sha1=" + DOC_SIGNATURE.removeprefix("sha256="),  # the legacy header's algorithm
        DOC_SIGNATURE[:-1] + "f",  # one hex digit off
        DOC_SIGNATURE.upper(),
        DOC_SIGNATURE + "00",
        "sha256=not-hex-at-all",
        "sha256=ünïcode",
    ],
)
def test_verify_refuses_missing_or_wrong_headers(header: str | None) -> None:
    assert not verify(DOC_SECRET, DOC_BODY, header)


def test_verify_refuses_another_body_or_secret() -> None:
    assert not verify(DOC_SECRET, DOC_BODY + b" ", DOC_SIGNATURE)
    assert not verify("another secret", DOC_BODY, DOC_SIGNATURE)


def test_an_empty_secret_verifies_nothing() -> None:
    assert not verify("", DOC_BODY, sign("", DOC_BODY))
