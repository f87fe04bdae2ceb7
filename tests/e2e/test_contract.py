"""The OpenAPI document is true: schemathesis drives every operation of the live gateway.

The document is loaded from the running gateway's ``/openapi.json``; each
operation gets a bounded, reproducible set of generated requests (the
document's examples, boundary and negative "coverage" cases, then random valid
and invalid ones; seeded, no example database) and every response goes through
schemathesis' default checks: no 5xx, documented status codes, content types,
headers and bodies, invalid input rejected with a 4xx, declared auth enforced,
undocumented methods answered 405 with ``Allow``.

Requests to operations that take a bearer token carry the demo admin's access
token (every scope), so secured operations are exercised beyond their 401.

schemathesis' pytest plugin (``schemathesis.pytest.from_fixture``) does not run
on pytest 9 (it sets ``Node._nodeid``, gone in pytest 9), so this drives its
engine directly, as its CLI does, and reports every distinct failure with a
curl command that reproduces it.
"""

import time
import uuid

import pytest
import requests
import schemathesis
from schemathesis.engine import StopReason, events, from_schema

pytestmark = pytest.mark.e2e

# Fixed, so that CI generates the same cases on every run.
SEED = 20261121
# Random cases per operation in the fuzzing phase. The coverage phase adds its
# own deterministic boundary and negative cases (about 35 per operation); about
# 20 operations make some 1,100 requests, 10-20 s against the local platform.
MAX_EXAMPLES = 25

# Generate strings with NUL characters? The JSON Schemas cannot forbid them and
# the contracts refuse them with a 400 (PostgreSQL text cannot hold NUL), which
# would fail positive_data_acceptance for schema-valid data; tested directly instead.
ALLOW_NUL = False

# Operations left out, each with its reason. Keep it empty if at all possible.
EXCLUDED = {}

_POSITIVE = ["2xx", "3xx", 401, 403, 404, 409, 429, "5xx"]  # schemathesis' default
_NEGATIVE = [400, 401, 403, 404, 405, 406, 409, 415, 422, 428, 429, "5xx"]  # its default
# Where a schema-valid request is still refused by design, and what answers it:
OPERATION_CHECKS = [
    # OAuth endpoints answer 400/401 to an unknown client, grant, code or token:
    # the document cannot say which client ids exist. GET /oauth/authorize can
    # also be answered 414 by gunicorn: its query values fit their maxLength but
    # the URL may not (see the 414 in the document).
    {
        "include-path-regex": "^/oauth/",
        "checks": {
            "positive_data_acceptance": {"expected-statuses": _POSITIVE + [400, 414]},
            "negative_data_rejection": {"expected-statuses": _NEGATIVE + [414]},
        },
    },
    # A cursor is opaque and MAC-protected: a made-up one is refused (400).
    *(
        {
            "include-name": name,
            "checks": {
                "positive_data_acceptance": {"expected-statuses": _POSITIVE + [400, 414]},
                "negative_data_rejection": {"expected-statuses": _NEGATIVE + [414]},
            },
        }
        for name in (
            "GET /v1/products",
            "GET /v1/orders",
            "GET /v1/notifications",
            "GET /v1/payments",
        )
    ),
    # A verification token or code is a secret the document cannot know: a
    # made-up one is refused (400), as is a code when none is pending.
    *(
        {
            "include-name": name,
            "checks": {"positive_data_acceptance": {"expected-statuses": _POSITIVE + [400]}},
        }
        for name in ("GET /v1/users/verify-email", "POST /v1/users/me/phone-verification")
    ),
    # Schema-valid image bytes are any bytes: what is not a decodable JPEG, PNG or
    # WebP of the declared type is refused (415/422), and more than
    # media.max_upload_bytes is 413.
    {
        "include-name": "POST /v1/products/{product_id}/images",
        "checks": {
            "positive_data_acceptance": {"expected-statuses": _POSITIVE + [413, 415, 422]},
            "negative_data_rejection": {"expected-statuses": _NEGATIVE + [413]},
        },
    },
    # An order naming a product the catalog does not have, or one product on two
    # lines, is refused (400): the document cannot list the catalog.
    {
        "include-name": "POST /v1/orders",
        "checks": {"positive_data_acceptance": {"expected-statuses": _POSITIVE + [400]}},
    },
    # A refund or a dispute is in the payment's own currency, which the document
    # cannot know: another currency is refused (400 validation_error). The
    # payments list (GET /v1/payments) hands the generator real payment ids.
    *(
        {
            "include-name": name,
            "checks": {"positive_data_acceptance": {"expected-statuses": _POSITIVE + [400]}},
        }
        for name in (
            "POST /v1/payments/{payment_id}/refunds",
            "POST /v1/payments/{payment_id}/disputes",
        )
    ),
    # The storefront's page is a 503 web_not_built (documented) on a platform
    # whose web/dist was never built: the suite does not need npm for this test.
    {
        "include-name": "GET /",
        "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", 503]}},
    },
]


def contract_config(base_url, token):
    config = {
        "base-url": base_url,
        "seed": SEED,
        # No "max-time": with one, the fuzzing phase keeps going until it is spent.
        "request-timeout": 10,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            # A failure is reported as found (with its curl command), not shrunk:
            # shrinking can take minutes.
            "no-shrink": True,
            # NUL characters included: PostgreSQL cannot store them, so each must be
            # refused before it reaches a service (see ALLOW_NUL).
            "allow-x00": ALLOW_NUL,
            # No .hypothesis/ example database in the work tree.
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "checks": {"enabled": True},
        "operations": OPERATION_CHECKS,
    }
    if token:
        # Sent only to operations whose security names the scheme.
        config["auth"] = {"openapi": {"bearerAuth": {"bearer": token}}}
    return schemathesis.Config.from_dict(config)


def run_engine(schema):
    """Distinct failures and errors (as text), the number of cases and why the run stopped."""
    failures = {}
    errors = []
    cases = 0
    stop_reason = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            for checks in event.recorder.checks.values():
                for check in checks:
                    info = check.failure_info
                    if info is None:
                        continue
                    failure = info.failure
                    key = (event.recorder.label, check.name, failure.title)
                    failures.setdefault(
                        key,
                        f"{event.recorder.label} [{check.name}] {failure.title}\n"
                        f"{_shorten(failure.message)}\nreproduce: {_shorten(info.code_sample)}",
                    )
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {_shorten(event.info.format())}")
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            stop_reason = event.stop_reason
            for failure in event.failures:
                failures.setdefault((failure.operation, failure.title), str(failure))
    return list(failures.values()), errors, cases, stop_reason


def _shorten(text, limit=1500):
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _wait_for_closed_circuits(base_url, timeout=15.0):
    """A 502 found by the run opens a service's breaker: wait until it answers again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # A query never read before, so the gateway's catalog cache cannot answer it.
        probe = f"{base_url}/v1/products?limit=1&q=probe{uuid.uuid4().hex[:8]}"
        if requests.get(probe, timeout=10).status_code == 200:
            return
        time.sleep(0.5)


PRODUCT_FIELDS = ("name", "description", "price", "active")


def snapshot(rpc, demo):
    """What the run may change in data other tests rely on.

    schemathesis reuses ids it saw in responses: it may rename or deactivate the
    listed products (demo ones included) and change the admin's profile or roles."""
    products = {}
    cursor = None
    while True:
        page = rpc.catalog.list_products(limit=100, cursor=cursor)
        for product in page["items"]:
            products[product["id"]] = {field: product[field] for field in PRODUCT_FIELDS}
        cursor = page["next_cursor"]
        if not cursor:
            break
    users = [
        rpc.users.authenticate(demo[f"{who}_email"], demo[f"{who}_password"])
        for who in ("admin", "user")
    ]
    return products, users


def restore(rpc, products, users):
    for product_id, fields in products.items():
        current = rpc.catalog.get_product(product_id)
        changes = {field: value for field, value in fields.items() if current[field] != value}
        if changes:
            rpc.catalog.update_product(product_id, changes)
    for user in users:
        current = rpc.users.get_user(user["id"])
        if current["roles"] != user["roles"]:
            rpc.users.set_roles(user["id"], user["roles"])
        # A name cannot be cleared (null is not a NAME); an address and a phone can.
        profile = {
            field: user[field]
            for field in ("name", "address", "phone")
            if current[field] != user[field] and (field != "name" or user[field])
        }
        if profile:
            rpc.users.update_profile(user["id"], profile)


def test_every_operation_matches_the_document(platform, admin_token, rpc, demo):
    url = f"{platform.base_url}/openapi.json"
    served = requests.get(url, timeout=10)
    # A 500 here is most likely a route without @operation(...): tests/unit/test_openapi.py
    # names it.
    assert served.status_code == 200, f"GET /openapi.json: {served.status_code} {served.text}"
    schema = schemathesis.openapi.from_url(
        url, config=contract_config(platform.base_url, admin_token)
    )
    for label in EXCLUDED:
        method, path = label.split(" ", 1)
        schema = schema.exclude(method=method, path=path)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, "the document lost operations"

    before = snapshot(rpc, demo)
    started = time.monotonic()
    try:
        failures, errors, cases, stop_reason = run_engine(schema)
    finally:
        elapsed = time.monotonic() - started
        # Leave the platform as the other end-to-end tests expect it.
        _wait_for_closed_circuits(platform.base_url)
        restore(rpc, *before)

    assert not errors and not failures, (
        f"{len(failures)} contract violation(s), {len(errors)} error(s) in {cases} cases:\n\n"
        + "\n\n".join(errors + failures)
    )
    assert stop_reason == StopReason.COMPLETED, f"the run stopped early: {stop_reason}"
    assert cases >= 10 * len(operations), f"only {cases} cases were run"
    print(f"\nschemathesis: {cases} cases, {len(operations)} operations, {elapsed:.1f} s")
