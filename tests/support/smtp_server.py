"""A real SMTP server for tests (aiosmtpd), run as its own process.

    python -m tests.support.smtp_server --port 2525 --maildir /tmp/mail [--auth user:pass]

Each message accepted is written to ``<maildir>/new/`` (through ``tmp/`` and a
rename, so a reader never sees half a file), with ``X-Envelope-From`` and
``X-Envelope-To`` headers in front. ``<maildir>/ready`` appears once the port
listens. SIGTERM stops it.

It runs outside the test process on purpose: the tests run under
``eventlet.monkey_patch()``, which breaks asyncio's threads.
"""

import argparse
import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class MaildirHandler:
    def __init__(self, maildir):
        self.tmp = maildir / "tmp"
        self.new = maildir / "new"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.new.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        head = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.eml"
        (self.tmp / name).write_bytes(head + content)
        os.rename(self.tmp / name, self.new / name)
        return "250 Message accepted for delivery"


def authenticator(username, password):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == username and auth_data.password.decode() == password
        return AuthResult(success=ok)

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--auth", help="user:password; AUTH is then required")
    args = parser.parse_args()

    maildir = Path(args.maildir)
    handler = MaildirHandler(maildir)
    options = {}
    if args.auth:
        username, _, password = args.auth.partition(":")
        options = {
            "authenticator": authenticator(username, password),
            "auth_required": True,
            "auth_require_tls": False,
        }

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(handler, hostname="agora-test-smtp", **options),
            host=args.host,
            port=args.port,
        )
    )
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    (maildir / "ready").write_text(str(os.getpid()))
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


if __name__ == "__main__":
    main()
