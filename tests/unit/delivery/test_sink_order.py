"""A sink Maildir is read in the order the messages arrived, across a second's microseconds."""

from __future__ import annotations

import mailbox
from pathlib import Path

from sealbill.mail.sink import read_maildir


def _deliver(maildir: Path, name: str, to: str) -> None:
    """A message stored under the name ``mailbox.Maildir`` would have given it."""
    (maildir / "new" / name).write_bytes(
        f"X-Sealbill-Envelope-To: {to}\r\nSubject: hi\r\n\r\nbody\r\n".encode())


def test_microseconds_are_compared_as_numbers_not_text(tmp_path: Path) -> None:
    mailbox.Maildir(str(tmp_path / "box"), create=True)
    box = tmp_path / "box"
    # M99999 (0.099999 s) arrived before M100000 (0.1 s); as text, "M1..." sorts first
    _deliver(box, "1765000000.M100000P7Q2.host", "second@buyer.example")
    _deliver(box, "1765000000.M99999P7Q1.host", "first@buyer.example")
    _deliver(box, "1765000001.M5P7Q3.host", "third@buyer.example")
    assert [env["to"] for env, _ in read_maildir(box)] == [
        "first@buyer.example", "second@buyer.example", "third@buyer.example"]
