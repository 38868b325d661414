"""``smtp-sink --maildir`` on an existing empty folder stores every message (it answered
``500 FileNotFoundError`` and then ``503 nested MAIL command``)."""

from __future__ import annotations

import smtplib
from pathlib import Path

from sealbill.mail.sink import SinkHandler, read_maildir, start_sink

MESSAGE = b"From: a@seller.example\r\nTo: b@buyer.example\r\nSubject: hi\r\n\r\nbody\r\n"


def test_an_existing_empty_folder_receives_every_message(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    maildir.mkdir()
    controller = start_sink(SinkHandler(maildir))
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
            for n in range(2):  # a second transaction on the same session
                refused = client.sendmail("a@seller.example", [f"b{n}@buyer.example"],
                                          MESSAGE)
                assert refused == {}
    finally:
        controller.stop()
    received = read_maildir(maildir)
    assert [env["to"] for env, _ in received] == ["b0@buyer.example", "b1@buyer.example"]


def test_a_message_that_cannot_be_stored_is_a_temporary_refusal_and_the_session_goes_on(
        tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    handler = SinkHandler(maildir)
    (maildir / "tmp").rmdir()  # the folder breaks under the running sink
    controller = start_sink(handler)
    try:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
            try:
                client.sendmail("a@seller.example", ["b@buyer.example"], MESSAGE)
                raise AssertionError("the message was acknowledged but not stored")
            except smtplib.SMTPDataError as exc:
                assert exc.smtp_code == 451
            (maildir / "tmp").mkdir()
            assert client.sendmail("a@seller.example", ["c@buyer.example"], MESSAGE) == {}
    finally:
        controller.stop()
    assert [env["to"] for env, _ in read_maildir(maildir)] == ["c@buyer.example"]
