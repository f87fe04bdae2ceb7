"""Delivery channels: email over SMTP and SMS through a pluggable provider.

Every ``send`` either returns (delivered to the next hop) or raises
:class:`SendError`; ``permanent`` errors (a 5xx SMTP reply, a 4xx from the SMS
gateway) are not retried. Plain blocking libraries (``smtplib``, ``requests``)
are used: under eventlet's monkey patching their sockets are green, so a slow
server stalls one green thread, never the process.
"""

import logging
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import requests

log = logging.getLogger(__name__)

SECURITIES = ("none", "starttls", "tls")


class SendError(Exception):
    """A send that did not go through; ``permanent`` ones are not worth retrying."""

    def __init__(self, message, permanent=False):
        super().__init__(message)
        self.permanent = permanent


def _describe(exc):
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


class EmailChannel:
    """Plain-text email through one SMTP server (``services.notifications.smtp``)."""

    def __init__(
        self,
        host,
        port,
        sender,
        security="none",
        username="",
        password="",
        timeout=10.0,
        ssl_context=None,
    ):
        if security not in SECURITIES:
            raise ValueError(f"security must be one of {SECURITIES}")
        if not parseaddr(sender)[1]:
            raise ValueError("sender must contain an email address")
        self.host = host
        self.port = port
        self.sender = sender
        self.security = security
        self.username = username or ""
        self.password = password or ""
        self.timeout = timeout
        self.ssl_context = ssl_context

    @classmethod
    def from_settings(cls, settings):
        return cls(
            host=settings["host"],
            port=settings["port"],
            sender=settings["sender"],
            security=settings.get("security", "none"),
            username=settings.get("username", ""),
            password=settings.get("password", ""),
            timeout=settings.get("timeout", 10.0),
        )

    def message(self, to, subject, body, headers=None):
        """The ``EmailMessage`` that ``send`` delivers."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or None
        msg["Message-ID"] = make_msgid(domain=domain)
        # RFC 3834: automatic responders should not answer this.
        msg["Auto-Submitted"] = "auto-generated"
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(body)
        return msg

    def _context(self):
        return self.ssl_context or ssl.create_default_context()

    def _connect(self):
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def send(self, to, subject, body, headers=None):
        try:
            Address(addr_spec=to)
        except (ValueError, IndexError, TypeError) as exc:
            problem = f"invalid recipient address: {_describe(exc)}"
            raise SendError(problem, permanent=True) from None
        msg = self.message(to, subject, body, headers)
        try:
            client = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            problem = f"cannot connect to {self.host}:{self.port}: {_describe(exc)}"
            raise SendError(problem) from None
        try:
            client.ehlo()
            if self.security == "starttls":
                client.starttls(context=self._context())
                client.ehlo()
            if self.username:
                client.login(self.username, self.password)
            client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise SendError(
                f"recipient refused: {exc.recipients}",
                permanent=all(500 <= code < 600 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            # SMTPSenderRefused, SMTPDataError, SMTPAuthenticationError...: 5xx is final.
            raise SendError(_describe(exc), permanent=500 <= exc.smtp_code < 600) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(_describe(exc)) from None
        finally:
            _close(client)


def _close(client):
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


class SmsProvider:
    """Sends one text message; ``enabled`` False means SMS is switched off."""

    name = "abstract"
    enabled = True

    def send(self, to, body):
        raise NotImplementedError

    def close(self):
        """Release connections (called when the service stops)."""


class NoSms(SmsProvider):
    """``provider: none``: no SMS rows are recorded at all."""

    name = "none"
    enabled = False

    def send(self, to, body):
        raise SendError("SMS is switched off (provider none)", permanent=True)


def mask_phone(phone):
    """``+49151...`` -> ``...4567``: logs need no full numbers."""
    return f"...{phone[-4:]}" if len(phone) > 4 else "..."


class LogSms(SmsProvider):
    """``provider: log``: the message goes to the service log (development)."""

    name = "log"

    def send(self, to, body):
        log.info("sms to %s: %s", mask_phone(to), body)


class HttpSms(SmsProvider):
    """``provider: http``: ``POST url`` with ``{"to", "body"}`` as JSON.

    ``Authorization: Bearer <token>`` is sent when a token is set. A 2xx reply is
    success; 4xx (but 408 and 429) is permanent, anything else is retried.
    """

    name = "http"

    def __init__(self, url, token="", timeout=5.0, session=None):
        if not url or not url.startswith(("http://", "https://")):
            raise ValueError("sms.url must be an http(s) URL when sms.provider is http")
        self.url = url
        self.token = token or ""
        self.timeout = timeout
        self.http = session or requests.Session()

    def send(self, to, body):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.http.post(
                self.url, json={"to": to, "body": body}, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise SendError(f"SMS gateway unreachable: {_describe(exc)}") from None
        if not 200 <= response.status_code < 300:
            status = response.status_code
            permanent = 400 <= status < 500 and status not in (408, 429)
            raise SendError(f"SMS gateway answered HTTP {status}", permanent=permanent)

    def close(self):
        self.http.close()


def sms_provider(settings):
    """The provider named by ``services.notifications.sms.provider``."""
    provider = settings.get("provider", "none")
    if provider == "none":
        return NoSms()
    if provider == "log":
        return LogSms()
    if provider == "http":
        return HttpSms(
            settings.get("url", ""), settings.get("token", ""), settings.get("timeout", 5.0)
        )
    raise ValueError(f"unknown SMS provider {provider!r}")
