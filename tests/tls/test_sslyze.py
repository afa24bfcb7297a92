"""sslyze against the static website example, run with ``riad run`` as a user would.

sslyze (from PyPI) connects with its own OpenSSL builds, tries every protocol
version, cipher suite and group it knows, and checks the server against
Mozilla's "intermediate" profile (``--mozilla_config=intermediate``, which makes
it exit 1 when the server does not comply). The test reads its JSON report
and checks each part of the profile by itself, and verifies the certificate
chain the server sent with ``cryptography``'s strict (web PKI) verifier
against the development CA.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from riad.testing.process import ServiceProcess, log_field, riad_command

from ..examples.test_static_site import load_build

ROOT = Path(__file__).resolve().parents[2]

TLS12_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
}
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}


class Scan:
    def __init__(self, done: subprocess.CompletedProcess[str], report: Any, certs: Path) -> None:
        self.done = done
        self.certs = certs
        (server,) = report["server_scan_results"]
        assert server["scan_status"] == "COMPLETED", server["connectivity_error_trace"]
        self.results: dict[str, Any] = server["scan_result"]

    def result(self, command: str) -> Any:
        attempt = self.results[command]
        assert attempt["status"] == "COMPLETED", attempt["error_trace"]
        return attempt["result"]


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    work = tmp_path_factory.mktemp("sslyze")
    build = load_build()
    artifact = build.build(work / "htdocs.kv")
    assert build.ensure_certificate(work / "certs", [])
    command = riad_command(
        "run", str(ROOT / "examples" / "static-site"),
        "--kv", f"htdocs={artifact}", "--kv", f"certs={work / 'certs'}",
        "--http-port", "0", "--https-port", "0", "--logs", "info",
    )  # fmt: skip
    with ServiceProcess(command) as proc:
        port = urlsplit(log_field(proc.wait_for("serving"), "https")).port
        report = work / "sslyze.json"
        done = subprocess.run(
            [sys.executable, "-m", "sslyze", "--mozilla_config=intermediate",
             f"--certinfo_ca_file={work / 'certs' / 'ca.pem'}", "--resum", "--early_data",
             f"--json_out={report}", f"localhost:{port}"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert proc.stop() == 0, proc.output
    return Scan(done, json.loads(report.read_text()), work / "certs")


def test_mozilla_intermediate_compliance(scan: Scan) -> None:
    assert scan.done.returncode == 0, scan.done.stdout + scan.done.stderr
    assert "OK - Compliant." in scan.done.stdout


def test_tls_1_2_and_1_3_only(scan: Scan) -> None:
    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert not scan.result(f"{old}_cipher_suites")["is_tls_version_supported"], old
    for new in ("tls_1_2", "tls_1_3"):
        assert scan.result(f"{new}_cipher_suites")["is_tls_version_supported"], new


def _accepted(result: Any) -> set[str]:
    return {accepted["cipher_suite"]["name"] for accepted in result["accepted_cipher_suites"]}


def test_suites_are_ecdhe_with_aead_only(scan: Scan) -> None:
    assert _accepted(scan.result("tls_1_2_cipher_suites")) == TLS12_SUITES
    assert _accepted(scan.result("tls_1_3_cipher_suites")) == TLS13_SUITES


def test_groups_are_x25519_p256_p384(scan: Scan) -> None:
    curves = scan.result("elliptic_curves")
    assert {curve["name"] for curve in curves["supported_curves"]} == {
        "X25519",
        "secp256r1",
        "secp384r1",
    }
    rejected = {curve["name"] for curve in curves["rejected_curves"]}
    assert {"X448", "secp521r1"} <= rejected


def test_no_compression_no_insecure_renegotiation_no_early_data(scan: Scan) -> None:
    assert not scan.result("tls_compression")["supports_compression"]
    renegotiation = scan.result("session_renegotiation")
    assert renegotiation["supports_secure_renegotiation"]
    assert not renegotiation["is_vulnerable_to_client_renegotiation_dos"]
    assert renegotiation["client_renegotiations_success_count"] == 0
    assert not scan.result("tls_1_3_early_data")["supports_early_data"]
    assert scan.result("tls_fallback_scsv")["supports_fallback_scsv"]
    assert scan.result("tls_extended_master_secret")["supports_ems_extension"]
    assert not scan.result("heartbleed")["is_vulnerable_to_heartbleed"]
    assert not scan.result("openssl_ccs_injection")["is_vulnerable_to_ccs_injection"]


def test_resumption_by_session_id_not_by_ticket(scan: Scan) -> None:
    resumption = scan.result("session_resumption")
    assert resumption["session_id_resumption_result"] == "FULLY_SUPPORTED"
    assert (
        resumption["session_id_successful_resumptions_count"]
        == (resumption["session_id_attempted_resumptions_count"])
    )
    assert resumption["tls_ticket_resumption_result"] == "NOT_SUPPORTED"
    assert resumption["tls_ticket_successful_resumptions_count"] == 0


def test_the_chain_sent_verifies_strictly_against_the_ca(scan: Scan) -> None:
    info = scan.result("certificate_info")
    (deployment,) = info["certificate_deployments"]
    leaf, *intermediates = (
        x509.load_pem_x509_certificate(cert["as_pem"].encode())
        for cert in deployment["received_certificate_chain"]
    )
    ca = x509.load_pem_x509_certificate((scan.certs / "ca.pem").read_bytes())
    assert intermediates == [ca]
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("localhost"))
    assert verifier.verify(leaf, intermediates) == [leaf, ca]
    by_store = {r["trust_store"]["name"]: r for r in deployment["path_validation_results"]}
    assert by_store["Supplied CA file"]["validation_error"] is None
    assert deployment["received_chain_has_valid_order"]
    usage = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert usage.ca is False
