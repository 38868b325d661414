"""A throwaway Postfix relay on loopback for tests and benches, relaying to the test SMTP sink.

:func:`start_postfix` writes a ``main.cf``/``master.cf`` of its own into a fresh folder (its
own queue and data directories: the machine's Postfix, if any, is never touched), a
self-signed certificate for ``127.0.0.1``, and starts the master with ``postfix -c DIR
start-fg`` as a child process. Every listener is on 127.0.0.1, on a free port:

- ``plain``: no TLS offered;
- ``starttls``: STARTTLS offered (``smtpd_tls_security_level = may``);
- ``smtps``: TLS from the first byte (``smtpd_tls_wrappermode = yes``);
- ``reject``: ``smtpd_client_restrictions = reject`` — every session refused (554, at RCPT
  since Postfix delays the client check by default), naming the client, not a recipient;
- ``encrypt``: ``smtpd_tls_security_level = encrypt`` — 530 until STARTTLS;
- ``auth``: STARTTLS then SASL AUTH required (Cyrus SASL, a ``sasldb2`` of its own holding
  :data:`SASL_USER` / :data:`SASL_PASSWORD`; ``smtpd_tls_auth_only = yes``, and
  ``smtpd_recipient_restrictions = permit_sasl_authenticated, reject``: a client that did not
  log in is refused at RCPT, naming the relay policy). Present when :func:`sasl_available`.

Postfix relays everything to ``[127.0.0.1]:<sink port>`` (an aiosmtpd capture of
:mod:`tests.support.smtp`), so a test sees what reached the far side of the relay. Postfix
needs root (its master drops to the ``postfix`` user): :func:`postfix_available` says whether
it can run here. ``make postfix`` installs it (and ``sasl2-bin`` for the ``auth`` listener).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealbill.mail.sink import free_port, start_sink
from tests.support.smtp import SmtpCapture, _FaultyHandler

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin") or "/usr/sbin/postfix"
LISTENERS = {
    "plain": "",
    "starttls": "-o smtpd_tls_security_level=may",
    "smtps": "-o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt",
    "reject": "-o smtpd_client_restrictions=reject",
    "encrypt": "-o smtpd_tls_security_level=encrypt",
}
SASLPASSWD = shutil.which("saslpasswd2", path="/usr/sbin:/usr/bin:/sbin") or "/usr/sbin/saslpasswd2"
SASL_USER, SASL_PASSWORD = "billing", "relay-secret-7"
AUTH_LISTENER = ("-o smtpd_tls_security_level=encrypt -o smtpd_tls_auth_only=yes "
                 "-o smtpd_sasl_auth_enable=yes -o smtpd_sasl_type=cyrus "
                 "-o smtpd_sasl_path=smtpd -o smtpd_sasl_security_options=noanonymous "
                 "-o smtpd_client_restrictions= "
                 "-o smtpd_relay_restrictions=permit_sasl_authenticated,reject "
                 "-o smtpd_recipient_restrictions=permit_sasl_authenticated,reject")
_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def sasl_available() -> str | None:
    """None when the ``auth`` listener can be set up (Cyrus ``saslpasswd2`` and its sasldb
    plugin), else why not."""
    if not Path(SASLPASSWD).exists():
        return "Cyrus SASL's saslpasswd2 is not installed (make postfix: sasl2-bin)"
    if not any(Path(d).glob("libsasldb.so*") for d in ("/usr/lib/x86_64-linux-gnu/sasl2",
                                                         "/usr/lib/aarch64-linux-gnu/sasl2",
                                                         "/usr/lib/sasl2")):
        return "Cyrus SASL's sasldb plugin is missing (make postfix: libsasl2-modules)"
    return None


def _sasl(folder: Path) -> None:
    """The Cyrus configuration ``smtpd.conf`` and the user database beside it, readable by
    the ``postfix`` user (smtpd is not chrooted here). Debian's Postfix reads
    ``$cyrus_sasl_config_path`` with ``/sasl`` appended, so the file goes in both places."""
    db = folder / "sasldb2"
    (folder / "sasl").mkdir(exist_ok=True)
    for conf in (folder / "smtpd.conf", folder / "sasl" / "smtpd.conf"):
        conf.write_text(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n"
            f"sasldb_path: {db}\n")
    subprocess.run([SASLPASSWD, "-c", "-p", "-f", str(db), "-u", "relay.sealbill.test",
                    SASL_USER], input=SASL_PASSWORD.encode(), check=True, capture_output=True)
    shutil.chown(db, "postfix", "postfix")
    db.chmod(0o600)


def postfix_available() -> str | None:
    """None when a throwaway Postfix can run here, else why not."""
    if not Path(POSTFIX).exists():
        return "Postfix is not installed (make postfix)"
    if os.geteuid() != 0:
        return "Postfix's master must start as root"
    return None


@dataclass
class PostfixRelay:
    folder: Path
    ports: dict[str, int]
    sink: SmtpCapture
    ca_file: str
    process: subprocess.Popen[bytes]

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        """Until the sink has accepted ``count`` messages in all (Postfix relays them from
        its queue a moment after it answered the client)."""
        deadline = time.monotonic() + timeout
        while len(self.sink.accepted) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.sink.accepted)} of {count} messages relayed "
                                     f"in {timeout} s; log: {self.log()[-2000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        path = self.folder / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_shows(self, text: str, timeout: float = 10.0) -> bool:
        """Whether ``text`` appears in Postfix's log within ``timeout`` seconds: Postfix's
        log service writes a line a moment after the daemon answered the client."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def reset(self) -> None:
        with self.sink.lock:
            self.sink.received.clear()
            self.sink.accepted.clear()


def _certificate(folder: Path) -> tuple[Path, Path]:
    key, cert = folder / "relay.key", folder / "relay.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return key, cert


def _main_cf(folder: Path, sink_port: int, key: Path, cert: Path) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.sealbill.test
mydomain = sealbill.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:{sink_port}
default_transport = smtp
smtp_tls_security_level = none
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = none
smtputf8_enable = no
biff = no
maillog_file = {folder}/postfix.log
maillog_file_prefixes = {folder}
alias_maps =
alias_database =
smtp_dns_support_level = disabled
disable_dns_lookups = yes
smtpd_peername_lookup = no
message_size_limit = 52428800
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
cyrus_sasl_config_path = {folder}
smtpd_sasl_local_domain = relay.sealbill.test
"""


def _listeners() -> dict[str, str]:
    return {**LISTENERS, "auth": AUTH_LISTENER} if sasl_available() is None else LISTENERS


def _master_cf(ports: dict[str, int]) -> str:
    lines = [f"127.0.0.1:{ports[name]} inet n - n - - smtpd {options}".rstrip()
             for name, options in _listeners().items()]
    return "\n".join(lines) + "\n" + _SERVICES


def _wait_listening(ports: dict[str, int], process: subprocess.Popen[bytes],
                    folder: Path) -> None:
    import socket

    deadline = time.monotonic() + 30
    for port in ports.values():
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"postfix exited ({process.returncode}): "
                                   f"{(folder / 'postfix.log').read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postfix did not listen on {port}") from None
                time.sleep(0.1)


@contextmanager
def start_postfix(folder: Path, relay_port: int | None = None) -> Iterator[PostfixRelay]:
    """A running relay in ``folder`` (see the module); stopped, and its queue removed, at the
    end. ``relay_port``: relay to that port instead (a bench's own sink; ``sink`` then stays
    empty)."""
    why = postfix_available()
    if why:
        raise RuntimeError(why)
    sink = SmtpCapture(host="127.0.0.1", port=relay_port or 0)
    controller = None
    if relay_port is None:
        controller = start_sink(_FaultyHandler(sink), host="127.0.0.1")
        sink.port = int(controller.port)
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("queue", "data"):
        (folder / sub).mkdir(exist_ok=True)
    shutil.chown(folder / "data", "postfix", "postfix")
    key, cert = _certificate(folder)
    ports = {name: free_port("127.0.0.1") for name in _listeners()}
    if "auth" in ports:
        _sasl(folder)
    (folder / "main.cf").write_text(_main_cf(folder, sink.port, key, cert))
    (folder / "master.cf").write_text(_master_cf(ports))
    process = subprocess.Popen([POSTFIX, "-c", str(folder), "start-fg"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(ports, process, folder)
        yield PostfixRelay(folder, ports, sink, str(cert), process)
    finally:
        subprocess.run([POSTFIX, "-c", str(folder), "stop"], capture_output=True, check=False)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if controller is not None:
            controller.stop()
        shutil.rmtree(folder / "queue", ignore_errors=True)


@contextmanager
def throwaway_postfix(relay_port: int | None = None) -> Iterator[PostfixRelay]:
    """:func:`start_postfix` in a fresh folder of its own, removed at the end (pytest's
    temporary folders are private to root: the ``postfix`` user could not reach its queue)."""
    folder = Path(tempfile.mkdtemp(prefix="sealbill-postfix-"))
    folder.chmod(0o755)
    try:
        with start_postfix(folder / "relay", relay_port) as relay:
            yield relay
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postfix_relay() -> Iterator[PostfixRelay]:
    """One Postfix for the whole session (starting one costs about a second); each test calls
    :meth:`PostfixRelay.reset`. Fails, saying why, where Postfix cannot run (never skips)."""
    why = postfix_available()
    if why:
        pytest.fail(f"{why}: run `make postfix` (make test does)")
    with throwaway_postfix() as relay:
        yield relay
