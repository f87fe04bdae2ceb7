"""The users service: registration, login checks and profiles, over RPC."""

from sqlalchemy.exc import IntegrityError

from services.chassis.db import Database, is_unique_violation
from services.chassis.errors import Conflict, InvalidCredentials, NotFound
from services.chassis.messaging import EventDispatcher, rpc
from services.chassis.service import AgoraService, SecretHashing
from services.chassis.values import utcnow
from services.users import domain, models
from services.users.models import Base, User
from services.users.schemas import EVENTS


def _conflict():
    return Conflict("email already registered", {"email": "already registered"})


class UsersService(AgoraService):
    name = "users"

    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)
    passwords = SecretHashing(domain.Passwords, "password_hash")

    def _user(self, user_id):
        uid = domain.parse_user_id(user_id)
        user = models.get_user(self.db.session, uid) if uid else None
        if user is None:
            raise NotFound("user not found")
        return user

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
        for field, value in changes.items():
            setattr(user, field, value)
        user.updated_at = utcnow()
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
