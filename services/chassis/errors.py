"""Named errors that cross RPC intact.

Each is registered with Nameko so a caller (another service, or the gateway)
gets the same exception class back, with its ``code`` and ``details``, instead
of an opaque ``RemoteError``. The gateway maps ``status`` to HTTP.
"""

from nameko.exceptions import deserialize_to_instance


class AgoraError(Exception):
    code = "error"
    status = 500

    def __init__(self, message, details=None):
        # Nameko sends ``args`` over the wire, turning every value that is not a
        # string, list or dict into its str(): None must not travel as "None".
        # (For the same reason, values inside ``details`` should be strings.)
        super().__init__(*((message,) if details is None else (message, details)))
        self.message = message
        self.details = details

    def __str__(self):
        return self.message

    def to_dict(self):
        return {"code": self.code, "message": self.message, "details": self.details}


@deserialize_to_instance
class ValidationError(AgoraError):
    """Arguments broke the contract; ``details`` maps field paths to problems."""

    code = "validation_error"
    status = 400


@deserialize_to_instance
class NotFound(AgoraError):
    code = "not_found"
    status = 404


@deserialize_to_instance
class UnknownSku(NotFound):
    """A SKU no catalog product has: inventory keeps no stock for it."""

    code = "unknown_sku"


@deserialize_to_instance
class Conflict(AgoraError):
    code = "conflict"
    status = 409


@deserialize_to_instance
class CancellationWindowClosed(Conflict):
    """A customer asked to cancel a confirmed order after its cancellation window
    (``services.orders.cancellation_window``): a refund is an administrator's action."""

    code = "cancellation_window_closed"


@deserialize_to_instance
class InvalidCredentials(AgoraError):
    code = "invalid_credentials"
    status = 401


@deserialize_to_instance
class InvalidGrant(AgoraError):
    """An OAuth2 grant (authorization code, refresh token) is unknown, expired,
    already used or revoked (RFC 6749 section 5.2 ``invalid_grant``)."""

    code = "invalid_grant"
    status = 400


@deserialize_to_instance
class Unavailable(AgoraError):
    """A dependency (database, cache, another service) cannot answer now."""

    code = "unavailable"
    status = 503


EXPECTED = (AgoraError,)


# --- a downstream service could not answer (services/chassis/service_client.py) ---
# Each is an ``Unavailable``: an RPC entrypoint sends it on to its caller (the
# gateway answers 503 with Retry-After), and an event handler that raises it has
# its event retried with backoff like any other failure.


@deserialize_to_instance
class ServiceUnavailable(Unavailable):
    """Another service cannot be called now: its circuit is open, the broker
    cannot be reached, no instance of it has ever started, or it failed
    unexpectedly. ``details``: ``{"service", "reason"}``."""

    code = "service_unavailable"


@deserialize_to_instance
class ServiceTimeout(ServiceUnavailable):
    """Another service did not answer within its client's timeout. The call may
    still have run there: only idempotent methods are ever retried."""

    code = "service_timeout"


@deserialize_to_instance
class BulkheadFull(ServiceUnavailable):
    """This process already has as many calls in flight to that service as its
    client allows (``rpc_clients.<service>.max_concurrent``): refused at once
    rather than queued behind a slow service."""

    code = "bulkhead_full"
