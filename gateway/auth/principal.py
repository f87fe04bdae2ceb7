"""Who is calling: the verified access token of the current request."""

from dataclasses import dataclass

from flask import g


@dataclass(frozen=True)
class Principal:
    """A verified access token. ``user_id`` is None for a client acting for itself
    (client_credentials), where the subject is the client."""

    subject: str
    client_id: str
    scopes: frozenset
    token_id: str
    expires_at: int
    family_id: str | None = None

    @property
    def user_id(self):
        return None if self.family_id is None and self.subject == self.client_id else self.subject


def current_principal():
    """The request's Principal, or None when it carries no (valid) token."""
    return g.get("principal")
