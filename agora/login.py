"""``agora login``: tokens through the authorization code flow with PKCE, the way a
native app gets them (RFC 8252).

Admin scopes are never granted through the password grant; this is how an
operator gets them from a terminal. The helper builds the authorization URL
with a fresh PKCE pair (S256) and ``state``, prints it (and opens a browser
when one is available), waits on a loopback port for the redirect
(``http://127.0.0.1:<port>/callback``, RFC 8252 7.3: the client registers
``http://127.0.0.1/callback`` and any port is admitted), and exchanges the
code at the token endpoint. The password is typed into the gateway's own
login page, never into this program.
"""

import base64
import hashlib
import html
import http.server
import secrets
import threading
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

CALLBACK_PATH = "/callback"
LOOPBACK_HOST = "127.0.0.1"


class LoginError(Exception):
    """The flow did not end with tokens; the message says why."""


def pkce_pair():
    """``(code_verifier, code_challenge)``: 256 random bits, S256 (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def authorize_url(base_url, client_id, redirect_uri, scope, state, challenge):
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{base_url.rstrip('/')}/oauth/authorize?{urlencode(query)}"


class _CallbackHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self._answer(404, "Not the login callback.")
            return
        params = {name: values[0] for name, values in parse_qs(parts.query).items()}
        if not self.server.receiver.deliver(params):
            self._answer(400, "This login was already answered; close this window.")
            return
        if "code" in params:
            self._answer(200, "Logged in: return to the terminal and close this window.")
        else:
            self._answer(400, f"Login refused: {params.get('error', 'no code')}.")

    def _answer(self, status, text):
        body = f"<!doctype html><title>agora login</title><p>{html.escape(text)}</p>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        """Quiet: the query holds the authorization code."""


class LoopbackReceiver:
    """One redirect, caught on ``127.0.0.1:<port>`` (0: a free port); a context manager."""

    def __init__(self, port=0):
        self.server = http.server.HTTPServer((LOOPBACK_HOST, port), _CallbackHandler)
        self.server.receiver = self
        self.port = self.server.server_address[1]
        self.redirect_uri = f"http://{LOOPBACK_HOST}:{self.port}{CALLBACK_PATH}"
        self._received = threading.Event()
        self._lock = threading.Lock()
        self.params = None
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def deliver(self, params):
        with self._lock:
            if self.params is not None:
                return False
            self.params = params
        self._received.set()
        return True

    def wait(self, timeout):
        """The redirect's query parameters, or LoginError when none came in time."""
        if not self._received.wait(timeout):
            raise LoginError(f"no redirect reached {self.redirect_uri} within {timeout:.0f} s")
        return self.params

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


def exchange_code(base_url, client_id, code, verifier, redirect_uri, timeout=10):
    """The token response for the code (RFC 6749 4.1.3, with the PKCE verifier)."""
    response = requests.post(
        f"{base_url.rstrip('/')}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        timeout=timeout,
    )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") or response.status_code
        raise LoginError(f"the token endpoint refused the code: {reason}")
    return body


def login(base_url, client_id, scope, *, port=0, timeout=300.0, show=print, browse=None):
    """Run the flow and return the token response.

    ``show(url)`` presents the authorization URL; ``browse(url)`` (optional)
    opens it, e.g. ``webbrowser.open``. The redirect must carry the ``state``
    sent, or the flow stops (RFC 6749 10.12)."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    with LoopbackReceiver(port) as receiver:
        url = authorize_url(base_url, client_id, receiver.redirect_uri, scope, state, challenge)
        show(url)
        if browse is not None:
            browse(url)
        params = receiver.wait(timeout)
    if not secrets.compare_digest(params.get("state", ""), state):
        raise LoginError("the redirect carried another state: not this login's answer")
    if "code" not in params:
        error = params.get("error", "no code")
        reason = (
            f"{error}: {params['error_description']}" if "error_description" in params else error
        )
        raise LoginError(f"the authorization was refused ({reason})")
    return exchange_code(base_url, client_id, params["code"], verifier, receiver.redirect_uri)
