"""Sending through a real relay: the same messages to a throwaway Postfix on loopback in plain
text, with STARTTLS and with SMTPS, with and without ``TCP_NODELAY``.

    .venv/bin/python bench/bench_relay.py [--count N] [--rounds N] [--size BYTES]

Needs Postfix (``make postfix``) and root (Postfix's master starts as root and drops to the
``postfix`` user). The relay is tests/support/postfix.py's (own configuration and queue in a
fresh folder), relaying to Postfix's ``smtp-sink`` (C, discards) so that the far side costs
this process nothing. The messages are built and DKIM-signed once, before the clock starts
(about ``--size`` bytes each: a text part and a PDF-sized attachment, two recipients as an
invoice and its archive copy); what is timed is :class:`sealbill.mail.smtp.SmtpSender` — one
connection, PIPELINING, ``send`` per message until Postfix answered 250 for it (queued: Postfix
has written and synced the message). "Without TCP_NODELAY" replaces
:func:`sealbill.mail.smtp.no_delay` by the identity, in this process only (the product has no
switch for it). Each round runs every variant once, in turn; the medians are printed with the
sender's CPU per message. Note the load average beside any figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.support.postfix import PostfixRelay, postfix_available, throwaway_postfix  # noqa: E402

from sealbill.mail import smtp as smtp_module  # noqa: E402
from sealbill.mail.config import SmtpConfig  # noqa: E402
from sealbill.mail.dkim import DkimKey, DkimSigner, generate_key  # noqa: E402
from sealbill.mail.sink import free_port  # noqa: E402
from sealbill.mail.smtp import Outcome, SmtpSender  # noqa: E402

VARIANTS = (("plain", "plain", "none"), ("STARTTLS", "starttls", "starttls"),
            ("SMTPS", "smtps", "ssl"))
SENDER, ARCHIVE = "billing@acme-cloud.example", "archive@acme-cloud.example"


def _messages(count: int, size: int, signer: DkimSigner) -> list[tuple[str, bytes]]:
    out = []
    filler = os.urandom(max(size * 3 // 4 - 2000, 1000))
    for i in range(count):
        msg = EmailMessage()
        msg["From"] = f"Acme Cloud SAS <{SENDER}>"
        msg["To"] = f"billing{i}@client{i}.example"
        msg["Subject"] = f"Facture F-{i:06d} / Invoice F-{i:06d}"
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = f"<bench-{i}.{time.time_ns()}@acme-cloud.example>"
        msg.set_content(f"Bonjour,\n\nveuillez trouver ci-joint la facture F-{i:06d}.\n")
        msg.add_attachment(filler, maintype="application", subtype="pdf",
                           filename=f"F-{i:06d}.pdf")
        data = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        out.append((str(msg["To"]), signer.sign(data)))
    return out


def _send_all(relay: PostfixRelay, listener: str, security: str,
              messages: list[tuple[str, bytes]]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to have Postfix take every message."""
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=relay.ports[listener],
                                   security=security, ca_file=relay.ca_file, timeout=30))
    wall, cpu = time.perf_counter(), time.process_time()
    for rcpt, data in messages:
        result = sender.send(SENDER, (rcpt, ARCHIVE), data)
        if result.outcome is not Outcome.SENT:
            raise SystemExit(f"{listener}: {result}")
    sender.close()
    return time.perf_counter() - wall, time.process_time() - cpu


def _identity(sock: object) -> object:
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=45_000)
    args = parser.parse_args()
    why = postfix_available()
    if why:
        raise SystemExit(f"bench_relay: {why}")
    key_path = Path(tempfile.mkdtemp(prefix="bench-relay-")) / "dkim.pem"
    signer = DkimSigner(DkimKey("bench", "acme-cloud.example", generate_key(key_path)))
    shutil.rmtree(key_path.parent)
    messages = _messages(args.count, args.size, signer)
    sink_port = free_port()
    sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{sink_port}",
                             "100"], stdout=subprocess.DEVNULL)
    original: Callable[..., object] = smtp_module.no_delay
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    version = subprocess.run(["postconf", "-h", "mail_version"], capture_output=True,
                             text=True).stdout.strip()
    print(f"{platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; Postfix {version}; "
          f"{args.count} messages of {len(messages[0][1]):,} bytes, {args.rounds} rounds")
    try:
        with throwaway_postfix(relay_port=sink_port) as relay:
            _send_all(relay, "plain", "none", messages[:10])  # warm-up (Postfix's processes)
            for _ in range(args.rounds):
                for name, listener, security in VARIANTS:
                    for nodelay in (True, False):
                        smtp_module.no_delay = original if nodelay else _identity  # type: ignore[assignment]
                        results.setdefault((name, nodelay), []).append(
                            _send_all(relay, listener, security, messages))
    finally:
        smtp_module.no_delay = original  # type: ignore[assignment]
        sink.terminate()
        sink.wait()
    print(f"{'':10} {'TCP_NODELAY on':>22} {'TCP_NODELAY off':>22}   (median of rounds; "
          "CPU of the sender per message)")
    for name, _, _ in VARIANTS:
        cells = []
        for nodelay in (True, False):
            runs = results[(name, nodelay)]
            rate = statistics.median(args.count / wall for wall, _ in runs)
            cpu = statistics.median(cpu for _, cpu in runs) / args.count * 1000
            cells.append(f"{rate:8.1f} msg/s {cpu:5.2f} ms")
        print(f"{name:10} {cells[0]:>22} {cells[1]:>22}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
