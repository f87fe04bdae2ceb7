"""The users service in a real container, against PostgreSQL and RabbitMQ."""

import uuid

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import text

from services.chassis.errors import Conflict, InvalidCredentials, NotFound, ValidationError
from services.chassis.messaging import event_handler
from services.chassis.schemas import validate
from services.chassis.testing import call_entrypoint as call
from services.users.schemas import ISSUED_VERIFICATION, USER, USER_ROLES
from services.users.service import UsersService
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-battery"


def unique_email(tag="user"):
    return f"{tag}-{uuid.uuid4().hex[:12]}@Example.COM"


@pytest.fixture
def users(start_service):
    return start_service(UsersService)


def register(container, **overrides):
    payload = {"email": unique_email(), "password": PASSWORD, **overrides}
    return call(container, "register", payload)


class Listener:
    name = "users_test_listener"
    received = []
    verifications = []

    @event_handler("users", "user_registered")
    def on_registered(self, envelope):
        Listener.received.append(envelope)

    @event_handler("users", "email_verification_requested")
    def on_email_verification(self, envelope):
        Listener.verifications.append(envelope)

    @event_handler("users", "phone_verification_requested")
    def on_phone_verification(self, envelope):
        Listener.verifications.append(envelope)


# --- register -------------------------------------------------------------------


def test_register_returns_the_user(users):
    email = unique_email("reg")
    user = call(users, "register", {"email": email, "password": PASSWORD, "name": "Ada"})
    validate(USER, user)
    assert user["email"] == email.lower()
    assert user["name"] == "Ada"
    assert user["roles"] == ["customer"]
    assert user["address"] is None and user["phone"] is None
    assert user["created_at"].endswith("Z") and user["created_at"] == user["updated_at"]
    assert "password_hash" not in user and "password" not in user


def test_register_duplicate_email_is_a_conflict_regardless_of_case(users):
    email = unique_email("dup")
    register(users, email=email)
    with pytest.raises(Conflict) as caught:
        register(users, email=f"  {email.upper()} ".strip())
    assert caught.value.details == {"email": "already registered"}
    with pytest.raises(Conflict):
        register(users, email=email.lower())


def test_concurrent_registrations_of_one_email_yield_one_user(users, service_config):
    # Real RPC (entrypoint_hook cannot tell concurrent calls of one method apart):
    # five calls in flight at once, so several pass the existence check and the
    # unique index has to decide.
    payload = {"email": unique_email("race"), "password": PASSWORD}
    with ClusterRpcProxy(service_config("tests"), timeout=10) as cluster:
        replies = [cluster.users.register.call_async(payload) for _ in range(5)]
        outcomes = []
        for reply in replies:
            try:
                outcomes.append(reply.result()["id"])
            except Conflict as exc:
                assert exc.details == {"email": "already registered"}
                outcomes.append("conflict")
    assert outcomes.count("conflict") == 4


def test_register_bad_payload_names_the_fields(users):
    with pytest.raises(ValidationError) as caught:
        call(users, "register", {"email": "nope", "password": "short", "role": "admin"})
    assert set(caught.value.details) == {"email", "password", "role"}


def test_register_publishes_user_registered(users, container_factory, service_config):
    Listener.received = []
    listener = container_factory(Listener, service_config(Listener.name))
    listener.start()
    email = unique_email("event")

    def is_ours(worker_ctx, result, exc_info):
        return worker_ctx.args[0]["data"]["email"] == email.lower()

    with entrypoint_waiter(listener, "on_registered", callback=is_ours, timeout=10):
        user = register(users, email=email)

    envelope = next(e for e in Listener.received if e["data"]["email"] == email.lower())
    assert envelope["type"] == "users.user_registered"
    assert envelope["data"] == {"user_id": user["id"], "email": user["email"]}


# --- get_user -------------------------------------------------------------------


def test_get_user(users):
    user = register(users, name="Grace")
    assert call(users, "get_user", user["id"]) == user


@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-uuid", None])
def test_get_unknown_user_is_not_found(users, user_id):
    with pytest.raises(NotFound):
        call(users, "get_user", user_id)


# --- get_roles ------------------------------------------------------------------


def test_get_roles_names_only_the_id_and_the_current_roles(users):
    user = register(users)
    roles = call(users, "get_roles", user["id"])
    assert validate(USER_ROLES, roles) == {"id": user["id"], "roles": ["customer"]}
    call(users, "set_roles", user["id"], ["admin", "customer"])
    assert call(users, "get_roles", user["id"])["roles"] == ["admin", "customer"]


@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-uuid", None])
def test_get_roles_of_an_unknown_user_is_not_found(users, user_id):
    with pytest.raises(NotFound):
        call(users, "get_roles", user_id)


# --- authenticate ---------------------------------------------------------------


def test_authenticate(users):
    user = register(users)
    assert call(users, "authenticate", user["email"].upper(), PASSWORD) == user


def test_authenticate_wrong_password(users):
    user = register(users)
    with pytest.raises(InvalidCredentials) as caught:
        call(users, "authenticate", user["email"], PASSWORD + "x")
    assert str(caught.value) == "invalid email or password"


def test_authenticate_unknown_email(users):
    with pytest.raises(InvalidCredentials) as caught:
        call(users, "authenticate", unique_email("ghost"), PASSWORD)
    assert str(caught.value) == "invalid email or password"


def test_authenticate_rehashes_an_outdated_hash(users, container_factory, service_config):
    user = register(users)
    stronger = service_config("users")
    stronger["AGORA"] = {
        **stronger["AGORA"],
        "services": {
            **stronger["AGORA"]["services"],
            "users": {
                **stronger["AGORA"]["services"]["users"],
                "password_hash": {"time_cost": 2, "memory_cost": 8192, "parallelism": 1},
            },
        },
    }
    upgraded = container_factory(UsersService, stronger)
    upgraded.start()
    assert call(upgraded, "authenticate", user["email"], PASSWORD)["id"] == user["id"]

    hasher = next(d for d in upgraded.dependencies if d.attr_name == "passwords").hasher
    engine = next(d for d in upgraded.dependencies if d.attr_name == "db").engine
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT password_hash FROM users WHERE id = %s", (user["id"],)
        ).scalar_one()
    assert "t=2" in stored and not hasher.needs_rehash(stored)
    assert call(upgraded, "authenticate", user["email"], PASSWORD)["id"] == user["id"]


# --- update_profile -------------------------------------------------------------


def test_update_profile(users):
    user = register(users)
    address = {"line1": "1 Main St", "city": "Lisbon", "postal_code": "1100-001", "country": "PT"}
    updated = call(users, "update_profile", user["id"], {"name": "Linus", "address": address})
    validate(USER, updated)
    assert updated["name"] == "Linus"
    assert updated["address"] == {**address, "line2": None}
    assert updated["updated_at"] > user["updated_at"]
    assert call(users, "get_user", user["id"]) == updated

    cleared = call(users, "update_profile", user["id"], {"address": None})
    assert cleared["address"] is None and cleared["name"] == "Linus"


def test_the_phone_number_is_set_at_registration_changed_and_removed(users):
    user = register(users, phone="+4915112345678")
    validate(USER, user)
    assert user["phone"] == "+4915112345678"
    changed = call(users, "update_profile", user["id"], {"phone": "+351912345678"})
    assert changed["phone"] == "+351912345678"
    assert call(users, "get_user", user["id"])["phone"] == "+351912345678"
    removed = call(users, "update_profile", user["id"], {"phone": None})
    assert removed["phone"] is None and removed["name"] == user["name"]
    with pytest.raises(ValidationError) as caught:
        call(users, "update_profile", user["id"], {"phone": "0151 1234"})
    assert set(caught.value.details) == {"phone"}
    assert call(users, "get_user", user["id"])["phone"] is None


def test_update_profile_validation_and_not_found(users):
    user = register(users)
    with pytest.raises(ValidationError) as caught:
        call(users, "update_profile", user["id"], {"address": {"line1": "x", "country": "pt"}})
    assert set(caught.value.details) == {"address.city", "address.postal_code", "address.country"}
    with pytest.raises(ValidationError):
        call(users, "update_profile", user["id"], {})
    with pytest.raises(NotFound):
        call(users, "update_profile", str(uuid.uuid4()), {"name": "Nobody"})


# --- set_roles ------------------------------------------------------------------


def test_set_roles(users):
    user = register(users)
    updated = call(users, "set_roles", user["id"], ["admin", "customer"])
    assert updated["roles"] == ["admin", "customer"]
    assert call(users, "get_user", user["id"])["roles"] == ["admin", "customer"]
    with pytest.raises(ValidationError) as caught:
        call(users, "set_roles", user["id"], ["superuser"])
    assert "roles.0" in caught.value.details
    with pytest.raises(NotFound):
        call(users, "set_roles", str(uuid.uuid4()), ["customer"])


# --- contact verification -------------------------------------------------------


@pytest.fixture(scope="module")
def users_db(service_engine):
    return service_engine("users")


def pending_rows(engine, user_id):
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT channel, target, secret_hash, attempts, expires_at FROM verifications "
                "WHERE user_id = :id ORDER BY channel"
            ),
            {"id": user_id},
        ).all()


def test_registering_asks_for_verification_with_no_secret_on_the_bus(
    users, container_factory, service_config
):
    Listener.verifications = []
    listener = container_factory(Listener, service_config(Listener.name))
    listener.start()
    user = register(users, phone="+4915112345678")
    assert user["email_verified"] is False and user["phone_verified"] is False

    def ours():
        return [e for e in Listener.verifications if e["data"]["user_id"] == user["id"]]

    found = wait_until(lambda: len(ours()) == 2 and ours(), what="both verification events")
    assert {e["type"] for e in found} == {
        "users.email_verification_requested",
        "users.phone_verification_requested",
    }
    # Only the user id: the secret is handed over RPC to notifications, never published.
    assert all(e["data"] == {"user_id": user["id"]} for e in found)


def test_an_email_link_verifies_once_and_only_its_hash_is_stored(users, users_db):
    user = register(users)
    issued = call(users, "issue_verification", user["id"], "email")
    validate(ISSUED_VERIFICATION, issued)
    assert issued["recipient"] == user["email"] and issued["channel"] == "email"
    ((channel, target, stored, attempts, _),) = pending_rows(users_db, user["id"])
    assert (channel, target, attempts) == ("email", user["email"], 0)
    assert issued["secret"] not in stored

    assert call(users, "verify_email", issued["secret"]) == {
        "email": user["email"],
        "email_verified": True,
    }
    assert call(users, "get_user", user["id"])["email_verified"] is True
    assert pending_rows(users_db, user["id"]) == []
    with pytest.raises(ValidationError) as caught:
        call(users, "verify_email", issued["secret"])  # used up
    assert set(caught.value.details) == {"token"}
    # Nothing left to prove: no new secret is issued.
    assert call(users, "issue_verification", user["id"], "email") is None


def test_a_new_link_voids_the_old_one_and_links_expire(users, users_db):
    user = register(users)
    first = call(users, "issue_verification", user["id"], "email")["secret"]
    second = call(users, "issue_verification", user["id"], "email")["secret"]
    with pytest.raises(ValidationError):
        call(users, "verify_email", first)
    with users_db.begin() as conn:
        conn.execute(
            text(
                "UPDATE verifications SET expires_at = now() - interval '1 second' "
                "WHERE user_id = :id"
            ),
            {"id": user["id"]},
        )
    with pytest.raises(ValidationError):
        call(users, "verify_email", second)
    assert call(users, "get_user", user["id"])["email_verified"] is False
    for garbage in ("short", "x" * 200, "has spaces in it ....", 7, None):
        with pytest.raises(ValidationError):
            call(users, "verify_email", garbage)


def test_a_phone_code_allows_few_tries_and_a_new_number_is_unverified(users, users_db):
    user = register(users, phone="+4915112345678")
    code = call(users, "issue_verification", user["id"], "phone")["secret"]
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    with pytest.raises(ValidationError) as caught:
        call(users, "verify_phone", user["id"], wrong)
    assert caught.value.details == {"code": "is wrong"}
    # The failed try was kept, though the call failed.
    assert pending_rows(users_db, user["id"])[0].attempts == 1
    for _ in range(4):
        with pytest.raises(ValidationError):
            call(users, "verify_phone", user["id"], wrong)
    with pytest.raises(ValidationError) as caught:
        call(users, "verify_phone", user["id"], code)  # right, but one try too many
    assert "too many" in caught.value.details["code"]
    assert call(users, "get_user", user["id"])["phone_verified"] is False

    code = call(users, "issue_verification", user["id"], "phone")["secret"]
    verified = call(users, "verify_phone", user["id"], code)
    assert verified["phone_verified"] is True and verified["email_verified"] is False
    assert pending_rows(users_db, user["id"]) == []
    assert call(users, "issue_verification", user["id"], "phone") is None

    changed = call(users, "update_profile", user["id"], {"phone": "+351912345678"})
    assert changed["phone_verified"] is False
    stale = call(users, "issue_verification", user["id"], "phone")["secret"]
    call(users, "update_profile", user["id"], {"phone": "+351900000000"})
    with pytest.raises(ValidationError):
        call(users, "verify_phone", user["id"], stale)  # a code for the old number
    assert call(users, "update_profile", user["id"], {"phone": None})["phone_verified"] is False
    assert call(users, "issue_verification", user["id"], "phone") is None


def test_mark_verified_is_the_trusted_path(users):
    user = register(users, phone="+4915112345678")
    marked = call(users, "mark_verified", user["id"])
    assert marked["email_verified"] is True and marked["phone_verified"] is True
    with pytest.raises(NotFound):
        call(users, "mark_verified", str(uuid.uuid4()))
    with pytest.raises(ValidationError):
        call(users, "issue_verification", user["id"], "carrier-pigeon")


# --- over real RPC --------------------------------------------------------------


def test_errors_cross_rpc_as_their_own_class(users, service_config):
    email = unique_email("rpc")
    with ClusterRpcProxy(service_config("tests"), timeout=10) as cluster:
        created = cluster.users.register({"email": email, "password": PASSWORD})
        assert created["email"] == email.lower()
        with pytest.raises(Conflict) as caught:
            cluster.users.register({"email": email, "password": PASSWORD})
        assert caught.value.details == {"email": "already registered"}
        assert caught.value.status == 409
        with pytest.raises(ValidationError) as caught:
            cluster.users.register({"email": "x"})
        assert set(caught.value.details) == {"email", "password"}
        assert cluster.users.health()["checks"]["db"] == "ok"
