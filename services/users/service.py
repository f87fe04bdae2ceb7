"""The users service: registration, login checks, profiles and contact verification, over RPC."""

from nameko.dependency_providers import Config
from sqlalchemy.exc import IntegrityError

from services.chassis.db import Database, is_unique_violation
from services.chassis.errors import Conflict, InvalidCredentials, NotFound, ValidationError
from services.chassis.messaging import EventDispatcher, keep_changes, rpc
from services.chassis.schemas import validate
from services.chassis.service import AgoraService, SecretHashing
from services.chassis.values import isoformat_utc, utcnow
from services.users import domain, models, verification
from services.users.models import Base, User
from services.users.schemas import (
    EMAIL_VERIFICATION_REQUEST,
    EVENTS,
    PHONE_VERIFICATION_REQUEST,
    VERIFICATION_CHANNEL,
)


def _conflict():
    return Conflict("email already registered", {"email": "already registered"})


class UsersService(AgoraService):
    name = "users"

    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)
    passwords = SecretHashing(domain.Passwords, "password_hash")
    config = Config()

    def _user(self, user_id):
        uid = domain.parse_user_id(user_id)
        user = models.get_user(self.db.session, uid) if uid else None
        if user is None:
            raise NotFound("user not found")
        return user

    def _settings(self):
        return self.config["AGORA"]["services"]["users"]["verification"]

    @rpc
    def register(self, payload):
        data = domain.registration(payload)
        session = self.db.session
        if models.find_by_email(session, data["email"]) is not None:
            raise _conflict()
        now = utcnow()
        user = User(
            email=data["email"],
            password_hash=self.passwords.hash(data["password"]),
            name=data["name"],
            phone=data["phone"],
            roles=list(domain.DEFAULT_ROLES),
            created_at=now,
            updated_at=now,
        )
        session.add(user)
        try:
            session.flush()
        except IntegrityError as exc:
            # Registered concurrently between the check above and this insert.
            if is_unique_violation(exc, models.EMAIL_UNIQUE):
                raise _conflict() from None
            raise
        self.dispatch("user_registered", {"user_id": str(user.id), "email": user.email})
        self.dispatch("email_verification_requested", {"user_id": str(user.id)})
        if user.phone:
            self.dispatch("phone_verification_requested", {"user_id": str(user.id)})
        return domain.serialize_user(user)

    @rpc
    def get_user(self, user_id):
        return domain.serialize_user(self._user(user_id))

    @rpc
    def get_roles(self, user_id):
        """USER_ROLES of the user, for the auth service to grant scopes from; NotFound."""
        return domain.serialize_roles(self._user(user_id))

    @rpc
    def authenticate(self, email, password):
        email = domain.login_email(email)
        user = models.find_by_email(self.db.session, email) if email else None
        if user is None:
            self.passwords.verify_dummy(password)
            raise InvalidCredentials("invalid email or password")
        if not self.passwords.verify(user.password_hash, password):
            raise InvalidCredentials("invalid email or password")
        if self.passwords.needs_rehash(user.password_hash):
            user.password_hash = self.passwords.hash(password)
        return domain.serialize_user(user)

    @rpc
    def update_profile(self, user_id, changes):
        changes = domain.profile_changes(changes)
        user = self._user(user_id)
        phone_given = "phone" in changes
        phone_changed = phone_given and changes["phone"] != user.phone
        for field, value in changes.items():
            setattr(user, field, value)
        user.updated_at = utcnow()
        if phone_changed:
            # A new number is unproven, and the old number's pending code is void.
            user.phone_verified_at = None
            models.drop_verification(self.db.session, user.id, verification.PHONE)
        if phone_given and user.phone and user.phone_verified_at is None:
            # A new number, or the same unproven one again: (re)send a code.
            self.dispatch("phone_verification_requested", {"user_id": str(user.id)})
        self.dispatch("profile_updated", {"user_id": str(user.id)})
        return domain.serialize_user(user)

    @rpc
    def set_roles(self, user_id, roles):
        """Internal (seeding, administration): replace the user's roles."""
        roles = domain.validate_roles(roles)
        user = self._user(user_id)
        user.roles = roles
        user.updated_at = utcnow()
        return domain.serialize_user(user)

    # --- contact verification ----------------------------------------------------

    @rpc
    def request_email_verification(self, user_id):
        """Mail a new verification link if the user's email is not proven yet."""
        user = self._user(user_id)
        if user.email_verified_at is None:
            self.dispatch("email_verification_requested", {"user_id": str(user.id)})
        return domain.serialize_user(user)

    @rpc
    def issue_verification(self, user_id, channel):
        """Internal, for notifications: a new secret proving the user's email or phone.

        Replaces any pending one (so only the latest message works) and returns
        ``ISSUED_VERIFICATION`` with the raw secret, which is stored only hashed.
        None when there is nothing to prove: already verified, or no phone.
        """
        validate(VERIFICATION_CHANNEL, channel, "invalid verification channel")
        user = self._user(user_id)
        settings = self._settings()
        if channel == verification.EMAIL:
            target, verified = user.email, user.email_verified_at
            secret, ttl = verification.new_email_token(), settings["email_ttl"]
        else:
            target, verified = user.phone, user.phone_verified_at
            secret, ttl = verification.new_phone_code(), settings["phone_ttl"]
        if not target or verified is not None:
            return None
        now = utcnow()
        expires_at = verification.expiry(now, ttl)
        digest = verification.secret_hash(channel, secret, str(user.id))
        models.put_verification(self.db.session, user.id, channel, target, digest, expires_at, now)
        return {
            "channel": channel,
            "recipient": target,
            "name": user.name,
            "secret": secret,
            "expires_at": isoformat_utc(expires_at),
        }

    @rpc
    def verify_email(self, token):
        """Confirm the link's token: the user's email is verified (the token is used up)."""
        validate(EMAIL_VERIFICATION_REQUEST, {"token": token}, "invalid verification link")
        session = self.db.session
        digest = verification.secret_hash(verification.EMAIL, token)
        pending = models.find_email_verification(session, digest)
        user = models.get_user(session, pending.user_id) if pending is not None else None
        now = utcnow()
        outcome = verification.verdict(_pending(pending), digest, user.email if user else None, now)
        if outcome != verification.OK:
            raise ValidationError(
                "invalid verification link", {"token": "is invalid, used or expired"}
            )
        models.drop_verification(session, user.id, verification.EMAIL)
        user.email_verified_at = now
        user.updated_at = now
        self.dispatch("profile_updated", {"user_id": str(user.id)})
        return {"email": user.email, "email_verified": True}

    @rpc
    def verify_phone(self, user_id, code):
        """Check the texted code: the user's phone is verified, or the try is counted."""
        validate(PHONE_VERIFICATION_REQUEST, {"code": code}, "invalid verification code")
        user = self._user(user_id)
        session = self.db.session
        if user.phone is not None and user.phone_verified_at is not None:
            return domain.serialize_user(user)  # already proven: nothing to do
        # Counted before the check, row-locked until commit: guesses cannot race.
        pending = models.count_attempt(session, user.id, verification.PHONE)
        digest = verification.secret_hash(verification.PHONE, code, str(user.id))
        now = utcnow()
        outcome = verification.verdict(
            _pending(pending), digest, user.phone, now, self._settings()["phone_max_attempts"]
        )
        if outcome != verification.OK:
            error = ValidationError("phone not verified", {"code": verification.REFUSALS[outcome]})
            # Keep the counted try: a wrong guess must cost one of the few allowed.
            raise keep_changes(error)
        models.drop_verification(session, user.id, verification.PHONE)
        user.phone_verified_at = now
        user.updated_at = now
        self.dispatch("profile_updated", {"user_id": str(user.id)})
        return domain.serialize_user(user)

    @rpc
    def mark_verified(self, user_id):
        """Internal (seeding, administration): the user's current email and phone count
        as proven, without a message."""
        user = self._user(user_id)
        now = utcnow()
        user.email_verified_at = user.email_verified_at or now
        if user.phone:
            user.phone_verified_at = user.phone_verified_at or now
        for channel in verification.CHANNELS:
            models.drop_verification(self.db.session, user.id, channel)
        user.updated_at = now
        self.dispatch("profile_updated", {"user_id": str(user.id)})
        return domain.serialize_user(user)


def _pending(row):
    if row is None:
        return None
    return verification.Pending(row.target, row.secret_hash, row.expires_at, row.attempts)
