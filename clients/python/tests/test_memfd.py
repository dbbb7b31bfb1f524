"""Where a key cannot be loaded from memory, the client says so and writes nothing."""

from __future__ import annotations

import os
import ssl

import pytest

from session_ca import InMemoryKeyUnsupported, SessionCertificate, SignerClient


def test_without_memfd_create_there_is_a_clear_error(signer, monkeypatch, tmp_path):
    certificate = SessionCertificate(SignerClient(signer.url))
    certificate.current()
    monkeypatch.delattr(os, "memfd_create")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with pytest.raises(InMemoryKeyUnsupported, match="memfd_create is not available"):
        certificate.ssl_context()
    with pytest.raises(InMemoryKeyUnsupported, match="will not write the private key to a file"):
        certificate.session()
    assert list(tmp_path.iterdir()) == []


def test_the_loaded_context_is_a_verifying_client_context(signer):
    context = SessionCertificate(SignerClient(signer.url)).ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
