"""STARTTLS, SMTPS and AUTH of :class:`SmtpSender` against real TLS servers on loopback.

A throwaway CA signs a certificate for ``localhost`` / ``127.0.0.1`` (generated with
``cryptography``); aiosmtpd serves STARTTLS (required before anything else) or implicit TLS,
with AUTH. Between the client and the server a byte-for-byte TCP relay records what crossed
the wire from the client, so "the password never went out in clear" is checked on the wire,
not inferred from the server's answers.

Proven here: STARTTLS + AUTH and SMTPS + AUTH deliver, and the server saw a TLS session and
the authenticated user; the ``SEALBILL_SMTP_*`` environment gives the same; a wrong password, an
untrusted certificate, a server that does not offer STARTTLS (stripped) and ``security=none``
against a STARTTLS-only server deliver nothing, answer a result that is not ``sent`` (never an
exception), and never put the password on the wire in clear.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealbill.mail.config import ConfigError, SmtpConfig, smtp_config
from sealbill.mail.sink import free_port
from sealbill.mail.smtp import Outcome, SendResult, SmtpSender

# The "ssl" and "plain" servers require AUTH without aiosmtpd's own TLS check (see serve()).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

USER, PASSWORD = "billing-relay", "s3cret-Pa55word"
MAIL_FROM = "billing@acme-cloud.example"
RCPT_TO = ("billing1@client1.example", "archive@acme-cloud.example")
DATA = (b"From: billing@acme-cloud.example\r\nTo: billing1@client1.example\r\n"
        b"Subject: Invoice F-000001\r\nMessage-ID: <tls-test@acme-cloud.example>\r\n\r\n"
        b"Your invoice.\r\n")


# --- a private PKI ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    ca_file: Path  # the CA that signed the server certificate
    other_ca_file: Path  # a CA that did not
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("sealbill test CA")
    _, other_cert = _ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pki = Pki(folder / "ca.pem", folder / "other-ca.pem", folder / "server.pem",
              folder / "server.key")
    pki.ca_file.write_bytes(_pem(ca_cert))
    pki.other_ca_file.write_bytes(_pem(other_cert))
    pki.cert_file.write_bytes(_pem(cert))
    pki.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return pki


# --- the server and the wire -----------------------------------------------------------------

@dataclass(frozen=True)
class Delivered:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls_version: str | None  # of the connection DATA arrived on (None: plaintext)
    starttls: bool  # the session went through STARTTLS (aiosmtpd's session.ssl)
    login: str | None  # the authenticated user of the session


@dataclass
class TlsServer:
    delivered: list[Delivered] = field(default_factory=list)
    auth_attempts: list[tuple[str, str, bool]] = field(default_factory=list)  # mech, user, ok

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        ssl_object = server.transport.get_extra_info("ssl_object")
        login = session.login_data
        self.delivered.append(Delivered(
            str(envelope.mail_from), tuple(str(r) for r in envelope.rcpt_tos),
            bytes(envelope.original_content),
            None if ssl_object is None else str(ssl_object.version()),
            session.ssl is not None,
            login.decode() if isinstance(login, bytes) else login))
        return "250 OK: delivered"

    def authenticator(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
              and auth_data.password == PASSWORD.encode())
        user = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
        self.auth_attempts.append((mechanism, user, ok))
        # handled=False: aiosmtpd answers the failure itself (535).
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class Relay:
    """A TCP relay on loopback: it forwards both ways and records every byte the client sent."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server((host, 0))
        self.port = int(self.listener.getsockname()[1])
        self.client_bytes = bytearray()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if from_client:
                    with self.lock:
                        self.client_bytes += chunk
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def wire(self) -> bytes:
        with self.lock:
            return bytes(self.client_bytes)

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


def secrets_in(wire: bytes) -> list[str]:
    """Every form of the password an SMTP client could put on the wire in clear: as is, AUTH
    PLAIN's base64 of ``\\0user\\0password``, AUTH LOGIN's base64 of the password alone."""
    forms = {
        "password": PASSWORD.encode(),
        "AUTH PLAIN": base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()),
        "AUTH LOGIN": base64.b64encode(PASSWORD.encode()),
    }
    return [name for name, form in forms.items() if form in wire]


@dataclass
class Running:
    server: TlsServer
    relay: Relay

    @property
    def port(self) -> int:
        return self.relay.port


Serve = Callable[..., Running]


@pytest.fixture
def serve(pki: Pki) -> Iterator[Serve]:
    """``serve(mode)`` starts aiosmtpd with AUTH required behind a recording relay:
    ``starttls`` (STARTTLS required before anything but EHLO/NOOP/QUIT, AUTH only over TLS),
    ``ssl`` (implicit TLS), or ``plain`` (no TLS at all, AUTH offered in clear: what a
    STARTTLS-stripping attacker would present)."""
    started: list[tuple[Controller, Relay]] = []

    def start(mode: str) -> Running:
        handler = TlsServer()
        kwargs: dict[str, Any] = {"authenticator": handler.authenticator,
                                  "auth_required": True}
        if mode == "starttls":
            kwargs |= {"tls_context": pki.server_context(), "require_starttls": True,
                       "auth_require_tls": True}
        elif mode == "ssl":
            # Implicit TLS: aiosmtpd does not know its own transport is TLS and would refuse
            # AUTH with auth_require_tls (aio-libs/aiosmtpd#281); the whole connection is TLS.
            kwargs |= {"ssl_context": pki.server_context(), "auth_require_tls": False}
        else:
            kwargs |= {"auth_require_tls": False}
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                                decode_data=False, ready_timeout=10, **kwargs)
        controller.start()
        relay = Relay(int(controller.port))
        started.append((controller, relay))
        return Running(handler, relay)

    try:
        yield start
    finally:
        for controller, relay in started:
            relay.close()
            controller.stop()


def send_once(config: SmtpConfig) -> SendResult:
    sender = SmtpSender(config)
    try:
        return sender.send(MAIL_FROM, RCPT_TO, DATA)
    finally:
        sender.close()


# --- delivering --------------------------------------------------------------------------------

def _delivered_over_tls_as_the_user(running: Any, result: Any) -> Any:
    """The one message, delivered as sent, over TLS, by the configured user."""
    assert result.outcome is Outcome.SENT and result.code == 250, result
    [got] = running.server.delivered
    assert (got.mail_from, got.rcpt_tos, got.data) == (MAIL_FROM, RCPT_TO, DATA)
    assert got.tls_version is not None and got.login == USER
    return got


def test_starttls_with_auth_delivers_over_tls_as_the_user(serve: Serve, pki: Pki) -> None:
    running = serve("starttls")
    result = send_once(SmtpConfig(port=running.port, security="starttls", user=USER,
                                  password=PASSWORD, ca_file=str(pki.ca_file), timeout=5))
    got = _delivered_over_tls_as_the_user(running, result)
    assert got.starttls and got.tls_version is not None and got.tls_version.startswith("TLS")
    assert [ok for _, _, ok in running.server.auth_attempts] == [True]
    # On the wire: EHLO, STARTTLS in clear, then only the TLS handshake and records.
    wire = running.relay.wire()
    assert wire.upper().startswith(b"EHLO ") and b"STARTTLS\r\n" in wire.upper()
    assert b"AUTH" not in wire.upper() and b"MAIL FROM" not in wire.upper()
    assert secrets_in(wire) == []


def test_smtps_with_auth_delivers_over_tls_as_the_user(serve: Serve, pki: Pki) -> None:
    running = serve("ssl")
    result = send_once(SmtpConfig(port=running.port, security="ssl", user=USER,
                                  password=PASSWORD, ca_file=str(pki.ca_file), timeout=5))
    got = _delivered_over_tls_as_the_user(running, result)
    assert not got.starttls
    wire = running.relay.wire()
    assert wire[:1] == b"\x16"  # a TLS handshake record from the first byte, no SMTP in clear
    assert b"EHLO" not in wire.upper() and secrets_in(wire) == []


def test_the_environment_settings_deliver_over_starttls(serve: Serve, pki: Pki) -> None:
    """What the CLI reads: SEALBILL_SMTP_HOST/PORT/SECURITY/USER/PASSWORD/CA_FILE."""
    running = serve("starttls")
    config = smtp_config({
        "SEALBILL_SMTP_HOST": "localhost", "SEALBILL_SMTP_PORT": str(running.port),
        "SEALBILL_SMTP_SECURITY": "STARTTLS", "SEALBILL_SMTP_USER": USER,
        "SEALBILL_SMTP_PASSWORD": PASSWORD, "SEALBILL_SMTP_CA_FILE": str(pki.ca_file),
        "SEALBILL_SMTP_TIMEOUT": "5"})
    assert (config.security, config.ca_file) == ("starttls", str(pki.ca_file))
    assert send_once(config).outcome is Outcome.SENT
    [got] = running.server.delivered
    assert got.starttls and got.login == USER


def test_one_connection_carries_several_messages_after_one_login(serve: Serve,
                                                                 pki: Pki) -> None:
    running = serve("starttls")
    sender = SmtpSender(SmtpConfig(port=running.port, security="starttls", user=USER,
                                   password=PASSWORD, ca_file=str(pki.ca_file), timeout=5))
    try:
        results = [sender.send(MAIL_FROM, RCPT_TO, DATA) for _ in range(3)]
    finally:
        sender.close()
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert len(running.server.delivered) == 3 and len(running.server.auth_attempts) == 1
    assert running.relay.wire().upper().count(b"STARTTLS") == 1


# --- refusing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_a_wrong_password_delivers_nothing_and_is_a_result_not_a_crash(
        serve: Serve, pki: Pki, mode: str) -> None:
    running = serve(mode)
    result = send_once(SmtpConfig(port=running.port, security=mode, user=USER,
                                  password="not-the-password", ca_file=str(pki.ca_file),
                                  timeout=5))
    # a session fault: the run pauses until the configuration is fixed; never a bounce
    assert result.outcome is Outcome.SESSION and not result.refused
    assert result.code == 535 and "credentials invalid" in result.detail.lower(), result
    assert running.server.delivered == []
    assert running.server.auth_attempts and not any(
        ok for _, _, ok in running.server.auth_attempts)
    assert b"MAIL FROM" not in running.relay.wire().upper()  # the session stopped at AUTH


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
@pytest.mark.parametrize("trust", ["system store only", "another CA"])
def test_an_untrusted_certificate_is_refused_before_any_credential(
        serve: Serve, pki: Pki, mode: str, trust: str) -> None:
    running = serve(mode)
    ca_file = None if trust == "system store only" else str(pki.other_ca_file)
    result = send_once(SmtpConfig(port=running.port, security=mode, user=USER,
                                  password=PASSWORD, ca_file=ca_file, timeout=5))
    assert result.outcome is not Outcome.SENT
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail, result
    assert running.server.delivered == [] and running.server.auth_attempts == []
    wire = running.relay.wire()
    # No plaintext fallback after the failed handshake: no AUTH, no MAIL, no password.
    assert b"AUTH" not in wire.upper() and b"MAIL FROM" not in wire.upper()
    assert secrets_in(wire) == []


def test_a_certificate_for_another_name_is_refused(serve: Serve, pki: Pki) -> None:
    """The CA is trusted but the certificate names localhost/127.0.0.1, not 127.0.0.2."""
    running = serve("starttls")
    # 127.0.0.2 is loopback too (Linux routes all of 127/8) but not in the certificate.
    relay = Relay(running.relay.upstream_port, host="127.0.0.2")
    try:
        result = send_once(SmtpConfig(host="127.0.0.2", port=relay.port, security="starttls",
                                      user=USER, password=PASSWORD,
                                      ca_file=str(pki.ca_file), timeout=5))
        assert result.outcome is not Outcome.SENT
        assert "CERTIFICATE_VERIFY_FAILED" in result.detail, result
        assert running.server.delivered == [] and secrets_in(relay.wire()) == []
    finally:
        relay.close()


def test_a_server_that_does_not_offer_starttls_is_not_used_in_clear(serve: Serve,
                                                                     pki: Pki) -> None:
    """A STARTTLS-stripping man in the middle: the server offers AUTH in clear but no
    STARTTLS. ``security=starttls`` must not fall back to plaintext."""
    running = serve("plain")
    result = send_once(SmtpConfig(port=running.port, security="starttls", user=USER,
                                  password=PASSWORD, ca_file=str(pki.ca_file), timeout=5))
    assert result.outcome is not Outcome.SENT
    assert "STARTTLS" in result.detail, result
    assert running.server.delivered == [] and running.server.auth_attempts == []
    wire = running.relay.wire()
    assert b"AUTH" not in wire.upper() and secrets_in(wire) == []


def test_security_none_against_a_starttls_only_server_never_sends_the_password(
        serve: Serve) -> None:
    """On loopback the configuration lets AUTH go without TLS (the password does not leave
    the machine); a server that only offers AUTH after STARTTLS then gets no credential at
    all, and no message."""
    running = serve("starttls")
    result = send_once(SmtpConfig(port=running.port, security="none", user=USER,
                                  password=PASSWORD, timeout=5))
    assert result.outcome is not Outcome.SENT
    assert "AUTH" in result.detail, result
    assert running.server.delivered == [] and running.server.auth_attempts == []
    wire = running.relay.wire()
    assert b"AUTH" not in wire.upper() and b"MAIL FROM" not in wire.upper()
    assert secrets_in(wire) == []


def test_security_none_without_auth_is_refused_by_a_starttls_only_server(
        serve: Serve) -> None:
    running = serve("starttls")
    result = send_once(SmtpConfig(port=running.port, security="none", timeout=5))
    assert result.outcome is not Outcome.SENT and result.code == 530, result
    assert running.server.delivered == []


@pytest.mark.parametrize("host", ["smtp.relay.example", "10.0.0.25", "127.0.0.1.example"])
def test_auth_without_tls_to_a_remote_host_is_a_configuration_error(host: str) -> None:
    with pytest.raises(ConfigError, match="starttls or ssl"):
        SmtpConfig(host=host, security="none", user=USER, password=PASSWORD)
    with pytest.raises(ConfigError):
        smtp_config({"SEALBILL_SMTP_HOST": host, "SEALBILL_SMTP_USER": USER,
                     "SEALBILL_SMTP_PASSWORD": PASSWORD})
    for security in ("starttls", "ssl"):
        assert SmtpConfig(host=host, security=security, user=USER,
                          password=PASSWORD).security == security


def test_a_wrong_password_stops_the_run_and_a_resume_finishes_it(
        serve: Serve, pki: Pki, sqlite_engine: Any, tmp_path: Path,
        smtp_server: Any, dkim_signer: Any) -> None:
    """The canary cannot be sent (535 at login): the run pauses as a configuration problem with
    nothing delivered, no attempt charged and no contact flagged; once the password is fixed,
    a recorded resume (or `run send` again) finishes the run."""
    from sealbill.pipeline.delivery import control
    from sealbill.pipeline.delivery.send import send_run
    from tests.integration.delivery.conftest import FAST, make_world

    running = serve("starttls")
    world = make_world(sqlite_engine, tmp_path, smtp_server, dkim_signer, accounts=3)
    world.plan()

    def config(password: str) -> SmtpConfig:
        return SmtpConfig(port=running.port, security="starttls", user=USER, password=password,
                          ca_file=str(pki.ca_file), timeout=5)

    def send(password: str) -> Any:
        return send_run(world.engine, world.org_id, world.run_id,
                        transport=SmtpSender(config(password)), signer=world.signer,
                        options=FAST)

    failed = send("not-the-password")
    assert failed.stopped == "smtp_session" and failed.status == "paused"
    assert running.server.delivered == []
    assert failed.counts == {"queued": 3}  # nothing charged, nothing written off
    assert "535" in world.alert_text() and "smtp_session" in world.alert_causes()
    assert control.resume(world.engine, world.org_id, actor="ops", run_id=world.run_id,
                          reason="SMTP password rotated")["requeued"] == 0
    done = send(PASSWORD)
    assert done.status == "sent" and done.counts == {"sent": 3}
    assert len(running.server.delivered) == 3
    assert world.ledger_ok()


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_the_smtp_socket_sends_small_tls_records_without_delay(serve: Serve, pki: Pki,
                                                               mode: str) -> None:
    """TCP_NODELAY on the client socket, after TLS too: Nagle's algorithm meeting delayed
    ACKs made each TLS message wait ~48 ms (issue 16)."""
    running = serve(mode)
    sender = SmtpSender(SmtpConfig(port=running.port, security=mode, user=USER,
                                   password=PASSWORD, ca_file=str(pki.ca_file), timeout=5))
    try:
        assert sender.send(MAIL_FROM, RCPT_TO, DATA).outcome is Outcome.SENT
        conn = sender._conn
        assert conn is not None and isinstance(conn.sock, ssl.SSLSocket)
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sender.close()
