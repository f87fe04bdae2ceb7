"""Public catalog reads cached in each gateway process, invalidated by the
catalog's events.

A product (by id) and a list page (by its validated query) are kept as the
JSON body the gateway answered with and its ETag, so a hot product costs no
RPC. The cache only serves while this process is consuming the catalog's
events (:class:`gateway.events.EventListener`): ``product_created`` and
``product_updated`` drop that product and every list page; when the event
connection is down or not consuming yet, every read goes to the catalog and
the cache is emptied, so nothing cached before an outage outlives it. Entries
also expire after ``ttl`` seconds (a safety net, not the invalidation), and the
cache is bounded by entry count and body bytes (least recently used first).

A read that missed asks for a ticket before its RPC and stores the answer only
if no event (nor outage) came in between: a reply loaded before an update must
not be stored after the update's event dropped the entry.
"""

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

log = logging.getLogger(__name__)

PRODUCT_EVENTS = ("product_created", "product_updated")
_LIST = "list"
_PRODUCT = "product"


@dataclass(frozen=True)
class Entry:
    body: bytes
    etag: str
    expires: float


def product_key(product_id):
    """The cache key of one product, whatever the case of its id."""
    return (_PRODUCT, str(uuid.UUID(product_id)))


def list_key(query):
    """The cache key of one list page: its validated query, in a stable order."""
    return (_LIST, tuple(sorted(query.items())))


class CatalogCache:
    def __init__(self, ttl, max_entries, max_bytes, clock=time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = OrderedDict()
        self._bytes = 0
        self._live = False
        # Bumped by every invalidation: a ticket from before one is void.
        self._epoch = 0
        self._listener = None
        # Catalog events received so far (a test waits for the next one).
        self.events = 0

    @property
    def live(self):
        """Whether the cache serves: the event consumer is consuming."""
        return self._live

    def __len__(self):
        return len(self._entries)

    def attach(self, listener):
        """The event listener that keeps this cache live; started by :meth:`start`."""
        self._listener = listener

    def start(self):
        """Start consuming the catalog's events (once; later calls do nothing).
        Started on the first read rather than at import, so a process that
        never serves a catalog read (a CLI, a unit test) opens no connection."""
        if self._listener is not None and not self._listener.started:
            self._listener.start()

    def stop(self):
        if self._listener is not None:
            self._listener.stop()

    def get(self, key):
        """The fresh entry under ``key``, or None (a miss, or not live)."""
        with self._lock:
            if not self._live:
                return None
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def ticket(self):
        """Take before loading what :meth:`put` will store; None when not live."""
        with self._lock:
            return self._epoch if self._live else None

    def put(self, key, ticket, body, etag):
        """Store ``body`` unless an event or an outage came since ``ticket``."""
        if ticket is None or len(body) > self.max_bytes:
            return
        with self._lock:
            if not self._live or ticket != self._epoch:
                return
            self._drop(key)
            self._entries[key] = Entry(body, etag, self._clock() + self.ttl)
            self._bytes += len(body)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                self._drop(oldest)

    def on_event(self, event_type, envelope):
        """A catalog event: drop its product and every list page (a name, price
        or active flag shows in the lists). Anything unexpected empties the cache."""
        self.events += 1
        try:
            key = product_key(envelope["data"]["product"]["id"])
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("catalog event %s without a product id: cache emptied", event_type)
            self.clear()
            return
        with self._lock:
            self._epoch += 1
            self._drop(key)
            for stale in [k for k in self._entries if k[0] == _LIST]:
                self._drop(stale)

    def set_live(self, live):
        """The event consumer started (True) or stopped (False) consuming.
        Either way, what was cached may have missed events: empty the cache."""
        with self._lock:
            was, self._live = self._live, live
            self._epoch += 1
            self._entries.clear()
            self._bytes = 0
        if was != live:
            log.info(
                "catalog cache %s",
                "on: consuming catalog events" if live else "bypassed: catalog events not consumed",
            )

    def clear(self):
        with self._lock:
            self._epoch += 1
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key):
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)
