"""A stand-in for the user's browser in the authorization code flow: it loads
the gateway's login-and-consent page, submits the form as a person would, and
follows the redirect to wherever the gateway sends it (the client's loopback
listener, say). No JavaScript, no cookies: the page needs neither."""

from html.parser import HTMLParser
from urllib.parse import urljoin

import requests


class LoginForm(HTMLParser):
    """The form's action and hidden fields."""

    def __init__(self):
        super().__init__()
        self.hidden = {}
        self.action = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action")
        if tag == "input" and attrs.get("type") == "hidden":
            self.hidden[attrs["name"]] = attrs.get("value", "")


class FormBrowser:
    """``FormBrowser(email, password)(authorize_url)``: log in and approve (or
    deny, ``decision="deny"``), then follow the redirect; ``.redirects`` records
    every Location the gateway answered with."""

    def __init__(self, email, password, decision="approve", timeout=10):
        self.email = email
        self.password = password
        self.decision = decision
        self.timeout = timeout
        self.redirects = []

    def __call__(self, url):
        page = requests.get(url, timeout=self.timeout)
        if page.status_code != 200:
            raise AssertionError(f"the login page answered {page.status_code}: {page.text}")
        form = LoginForm()
        form.feed(page.text)
        fields = {
            **form.hidden,
            "email": self.email,
            "password": self.password,
            "decision": self.decision,
        }
        answer = requests.post(
            urljoin(url, form.action), data=fields, allow_redirects=False, timeout=self.timeout
        )
        if answer.status_code != 302:
            raise AssertionError(f"the login form answered {answer.status_code}: {answer.text}")
        location = answer.headers["Location"]
        self.redirects.append(location)
        requests.get(location, timeout=self.timeout)
        return True
