"""The auth service: OAuth2 clients, refresh-token families, authorization codes,
RSA signing keys, and signed access tokens, over RPC.

The gateway hosts the OAuth2 endpoints and verifies access tokens locally
against ``jwks()``; revocations reach it through Redis (``schemas.revoked_*_key``).

A revoked family is recorded in this service's database (its tokens' and codes'
``revoked_at``), and so is a revoked access token (``revoked_access_tokens``):
the database is the truth. The Redis denylist follows it: written right after
the commit, for families written again by the handler of the service's own
``token_family_revoked`` event (from the outbox, retried until Redis takes it),
and rebuilt from the database at start and every ``denylist_sync_interval``
seconds, so a flushed or restarted Redis converges.
"""

import logging
import uuid

import redis as redis_lib
from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from sqlalchemy.exc import IntegrityError

from services.auth import domain, models
from services.auth.models import AuthorizationCode, Base, OAuthClient, RefreshToken, SigningKey
from services.auth.schemas import EVENTS, revoked_access_key, revoked_family_key
from services.chassis.db import Database, is_unique_violation
from services.chassis.errors import (
    Conflict,
    InvalidGrant,
    NotFound,
    ValidationError,
)
from services.chassis.messaging import EventDispatcher, event_handler, keep_changes, rpc
from services.chassis.offload import offload
from services.chassis.service import AgoraService, DeadLetterAdmin, SecretHashing, setting_timer
from services.chassis.service_client import ServiceClient
from services.chassis.values import isoformat_utc, utcnow

log = logging.getLogger(__name__)


class KeyRing:
    """Signing keys of this process, decrypted once and kept by kid.

    Generating and decrypting RSA keys is CPU-heavy: both run off the event loop.
    """

    def __init__(self, key_size, passphrase):
        self.key_size = key_size
        self.passphrase = passphrase
        self.keys = {}

    def generate(self):
        material = offload(domain.generate_signing_key, self.key_size, self.passphrase)
        self.keys[material.kid] = material.key
        return material

    def private_key(self, record):
        """The decrypted key of ``record``; a key stored with the old, weak KDF is
        written back re-encrypted (committed with the caller's transaction)."""
        key = self.keys.get(record.kid)
        if key is None:
            key, upgraded = offload(domain.load_signing_key, record.private_pem, self.passphrase)
            if upgraded is not None:
                record.private_pem = upgraded
                log.info("signing key %s re-encrypted with scrypt", record.kid)
            self.keys[record.kid] = key
        return key


class SigningKeys(DependencyProvider):
    def setup(self):
        settings = self.container.config["AGORA"]["services"]["auth"]
        self.ring = KeyRing(settings["key_size"], settings["key_passphrase"])

    def get_dependency(self, worker_ctx):
        return self.ring


def _client_conflict():
    return Conflict("client already exists", {"client_id": "already exists"})


class AuthService(DeadLetterAdmin, AgoraService):
    name = "auth"

    db = Database(Base)
    dispatch = EventDispatcher(EVENTS)
    config = Config()
    secrets = SecretHashing(domain.ClientSecrets, "client_secret_hash")
    keys = SigningKeys()
    # The owner of identity facts: a grant's roles are read here, never taken
    # from the caller (a forged issue_token cannot name its own roles).
    users = ServiceClient("users")

    @property
    def settings(self):
        return self.config["AGORA"]["auth"]

    # --- clients -----------------------------------------------------------------

    def _client(self, client_id):
        client = models.get_client(self.db.session, client_id)
        if client is None:
            raise NotFound("client not found")
        return client

    @rpc
    def get_client(self, client_id):
        return domain.serialize_client(self._client(client_id))

    @rpc
    def verify_client_secret(self, client_id, secret):
        """True if ``secret`` is the confidential client's secret; constant time."""
        client = models.get_client(self.db.session, client_id)
        if client is None or client.public or not client.secret_hash:
            return self.secrets.verify_dummy(secret)
        if not self.secrets.verify(client.secret_hash, secret):
            return False
        if self.secrets.needs_rehash(client.secret_hash):
            client.secret_hash = self.secrets.hash(secret)
        return True

    @rpc
    def create_client(self, payload):
        """Register a client; a confidential one without a secret gets one, returned
        once as ``client_secret``. Emits ``client_created``."""
        fields, secret, generated = domain.new_client(payload)
        session = self.db.session
        if models.get_client(session, fields["client_id"]) is not None:
            raise _client_conflict()
        now = utcnow()
        client = OAuthClient(
            **fields,
            secret_hash=self.secrets.hash(secret) if secret is not None else None,
            created_at=now,
            updated_at=now,
        )
        session.add(client)
        try:
            session.flush()
        except IntegrityError as exc:
            # Created concurrently between the check above and this insert.
            if is_unique_violation(exc, models.CLIENT_PKEY):
                raise _client_conflict() from None
            raise
        view = domain.serialize_client(client)
        self.dispatch(
            "client_created",
            {
                "client_id": client.client_id,
                "public": client.public,
                "grant_types": view["grant_types"],
                "scopes": view["scopes"],
            },
        )
        if generated:
            view["client_secret"] = secret
        return view

    @rpc
    def update_client(self, client_id, changes):
        client = self._client(client_id)
        fields, secret = domain.client_changes(client, changes)
        for column, value in fields.items():
            setattr(client, column, value)
        if secret is not None:
            client.secret_hash = self.secrets.hash(secret)
        client.updated_at = utcnow()
        return domain.serialize_client(client)

    # --- tokens ------------------------------------------------------------------

    def _roles(self, user_id):
        """The user's roles now, from the users service; InvalidGrant if the user
        is gone, ServiceUnavailable if the users service cannot say."""
        try:
            return self.users.get_roles(str(user_id))["roles"]
        except NotFound:
            raise InvalidGrant("the user no longer exists") from None

    @rpc
    def issue_token(self, request):
        """An access token for a grant the gateway has checked, and a refresh token
        (a new family, or ``family_id``'s) when asked for and allowed."""
        domain.issue_request(request)
        grant_type = request["grant_type"]
        if grant_type == "password" and not self.settings["password_grant"]:
            raise ValidationError(
                "the password grant is disabled", {"grant_type": "password is disabled"}
            )
        session = self.db.session
        client = models.get_client(session, request["client_id"])
        domain.check_grant(client, grant_type)
        user = request["user"]
        user_id = uuid.UUID(user["id"]) if user is not None else None
        scopes = domain.granted_scopes(
            request["scope"],
            domain.grant_client_scopes(client.scopes, grant_type),
            self._roles(user_id) if user is not None else None,
            user is not None,
        )
        scope = domain.format_scope(scopes)
        now = utcnow()
        family_id = refresh_token = None
        if user is not None:
            if request.get("family_id") is not None:
                family_id = uuid.UUID(request["family_id"])
                self._join_family(family_id, client.client_id, user_id)
            else:
                family_id = uuid.uuid4()
            if request["include_refresh_token"] and "refresh_token" in client.grant_types:
                refresh_token = self._add_refresh_token(
                    client.client_id, user_id, scope, family_id, now
                )
        access_token = self._access_token(client.client_id, user_id, scope, family_id)
        return domain.token_response(
            access_token, self.settings["access_token_ttl"], scope, refresh_token
        )

    @rpc
    def rotate_refresh_token(self, request):
        """Consume the refresh token once and issue the next of its family.

        A token presented again after it was used revokes its whole family
        (committed, events published) before ``InvalidGrant`` is raised.
        """
        domain.rotate_request(request)
        session = self.db.session
        client = models.get_client(session, request["client_id"])
        if client is None or "refresh_token" not in client.grant_types:
            raise InvalidGrant("the client may not use refresh tokens")
        digest = domain.token_hash(request["refresh_token"])
        found = models.find_refresh_token(session, digest)
        if found is None:
            raise InvalidGrant("unknown refresh token")
        if found.client_id != client.client_id:
            raise InvalidGrant("refresh token was issued to another client")

        models.lock_family(session, found.family_id)
        now = utcnow()
        token = models.consume_refresh_token(session, digest, client.client_id, now)
        if token is None:
            self._refuse(
                models.find_refresh_token(session, digest),
                "refresh token",
                "refresh token reuse detected; the token family was revoked",
                now,
            )
        # A refused scope raises, and the rollback un-consumes the token.
        refresh_scopes, access_scopes = domain.rotation_scopes(
            request["scope"], token.scope, client.scopes, self._roles(token.user_id)
        )
        refresh_token = self._add_refresh_token(
            client.client_id,
            token.user_id,
            domain.format_scope(refresh_scopes),
            token.family_id,
            now,
            parent=token,
        )
        scope = domain.format_scope(access_scopes)
        access_token = self._access_token(client.client_id, token.user_id, scope, token.family_id)
        return domain.token_response(
            access_token, self.settings["access_token_ttl"], scope, refresh_token
        )

    def _refuse(self, row, what, reuse_message, now):
        """Why a token or code that could not be consumed is refused. A second use
        revokes its family, committed although the call fails."""
        if row.used_at is not None:
            reason = domain.REUSE_DETECTED
            self._revoke_family(row.family_id, row.client_id, row.user_id, reason, now)
            raise keep_changes(InvalidGrant(reuse_message))
        if row.revoked_at is not None:
            raise InvalidGrant(f"{what} revoked")
        raise InvalidGrant(f"{what} expired")

    @rpc
    def get_refresh_token(self, token):
        if not isinstance(token, str):
            raise ValidationError("invalid refresh token", {"token": "must be of type string"})
        found = models.find_refresh_token(self.db.session, domain.token_hash(token))
        if found is None:
            raise NotFound("refresh token not found")
        return domain.refresh_token_info(found, utcnow())

    @rpc
    def revoke_refresh_token(self, client_id, token):
        """RFC 7009: revoke the token's family if it is ``client_id``'s; False otherwise."""
        domain.revoke_refresh_request(client_id, token)
        session = self.db.session
        found = models.find_refresh_token(session, domain.token_hash(token))
        if found is None or found.client_id != client_id:
            return False
        models.lock_family(session, found.family_id)
        self._revoke_family(
            found.family_id, found.client_id, found.user_id, domain.REVOKED_BY_CLIENT, utcnow()
        )
        return True

    @rpc
    def revoke_access_token(self, jti, expires_at, client_id):
        """Deny ``jti`` at the gateway until it would expire anyway.

        Recorded in the database (the denylist sync writes it to Redis again
        after a flush or a restart), then written to Redis after the commit;
        with Redis down the revocation stands and reaches Redis with the sync.
        """
        domain.revoke_access_request(jti, expires_at, client_id)
        now = utcnow()
        ttl = domain.access_revocation_ttl(expires_at, now, self.settings["clock_skew"])
        if ttl <= 0:
            return
        models.record_access_revocation(
            self.db.session, jti, client_id, domain.from_epoch(expires_at), now
        )
        self.db.on_commit(lambda: self._deny_access_token(jti, client_id, ttl))

    def _deny_access_token(self, jti, client_id, ttl):
        try:
            self.cache.set(self.cache.key(revoked_access_key(jti)), client_id, ex=ttl)
        except redis_lib.RedisError:
            log.warning(
                "access token %s revoked, but Redis is unreachable: denied once it "
                "answers again (denylist sync)",
                jti,
            )

    # --- the gateway's denylist of revoked families -----------------------------

    @event_handler("auth", "token_family_revoked")
    def deny_revoked_family(self, event):
        """The revocation, committed and published through the outbox, reaches
        Redis here; a Redis error fails the handler, and the event is retried."""
        data = event["data"]
        self._deny_family(data["family_id"], data["reason"], strict=True)

    @setting_timer("denylist_sync_interval", eager=True)
    def sync_denylist(self):
        """Write every revocation the database holds (families, access tokens)
        that may still matter into Redis: at start, then periodically; forget
        access-token revocations past their tokens' life. Returns how many were
        written (None while Redis is unreachable)."""
        session = self.db.session
        now = utcnow()
        ttl, skew = self.settings["access_token_ttl"], self.settings["clock_skew"]
        entries = [
            (
                revoked_family_key(family_id),
                "revoked",
                domain.family_denial_ttl(revoked_at, now, ttl, skew),
            )
            for family_id, revoked_at in models.revoked_families(
                session, domain.denied_since(now, ttl, skew)
            )
        ]
        expired_before = domain.accepted_until(now, skew)
        # The value is what revoke_access_token writes (the client), so a sync
        # that runs beside a revocation writes the same entry, not another one.
        entries += [
            (
                revoked_access_key(jti),
                client_id,
                domain.access_revocation_ttl(domain.epoch(exp), now, skew),
            )
            for jti, exp, client_id in models.revoked_access_tokens(session, expired_before)
        ]
        models.forget_access_revocations(session, expired_before)
        entries = [entry for entry in entries if entry[2] > 0]
        if not entries:
            return 0
        try:
            pipeline = self.cache.pipeline(transaction=False)
            for key, value, seconds in entries:
                pipeline.set(self.cache.key(key), value, ex=seconds)
            pipeline.execute()
        except redis_lib.RedisError as exc:
            log.warning(
                "denylist sync: Redis unreachable (%s); %d revocations wait for the next run",
                exc.__class__.__name__,
                len(entries),
            )
            return None
        return len(entries)

    # --- authorization codes -----------------------------------------------------

    @rpc
    def create_authorization_code(self, request):
        domain.code_request(request)
        session = self.db.session
        client = models.get_client(session, request["client_id"])
        domain.check_grant(client, "authorization_code", field="client_id")
        redirect_uri = domain.code_redirect_uri(client, request["redirect_uri"])
        user = request["user"]
        scope = domain.format_scope(
            domain.granted_scopes(request["scope"], client.scopes, self._roles(user["id"]))
        )
        code = domain.new_token()
        now = utcnow()
        ttl = self.settings["authorization_code_ttl"]
        session.add(
            AuthorizationCode(
                code_hash=domain.token_hash(code),
                client_id=client.client_id,
                user_id=uuid.UUID(user["id"]),
                redirect_uri=redirect_uri,
                scope=scope,
                code_challenge=request["code_challenge"],
                code_challenge_method=request["code_challenge_method"],
                nonce=request.get("nonce"),
                family_id=uuid.uuid4(),
                created_at=now,
                expires_at=domain.code_expiry(now, ttl),
            )
        )
        return {"code": code, "expires_in": ttl}

    @rpc
    def redeem_authorization_code(self, request):
        """Check the PKCE verifier and redirect_uri, then mark the code used, once,
        in this one transaction. A wrong verifier or redirect_uri changes nothing
        (whoever sent it cannot burn the legitimate client's code); a second
        redemption with the right one revokes what the code issued."""
        domain.redeem_request(request)
        client_id = request["client_id"]
        session = self.db.session
        digest = domain.token_hash(request["code"])
        found = models.find_code(session, digest)
        if found is None:
            raise InvalidGrant("unknown authorization code")
        if found.client_id != client_id:
            raise InvalidGrant("authorization code was issued to another client")
        # The challenge and redirect_uri of a code never change: checked before
        # the conditional UPDATE below, they hold for the row it consumes.
        if not domain.code_matches(found, request["code_verifier"], request["redirect_uri"]):
            raise InvalidGrant("code_verifier or redirect_uri does not match the authorization")
        models.lock_family(session, found.family_id)
        now = utcnow()
        redeemed = models.consume_code(session, digest, client_id, now)
        if redeemed is not None:
            return domain.authorization_code_info(redeemed)
        self._refuse(
            models.find_code(session, digest),
            "authorization code",
            "authorization code already used; its tokens were revoked",
            now,
        )

    # --- signing keys ------------------------------------------------------------

    @rpc
    def jwks(self):
        """The current key and every retired key a still-accepted token may carry."""
        self._current_signing_key()
        since = domain.published_since(
            utcnow(), self.settings["access_token_ttl"], self.settings["clock_skew"]
        )
        keys = models.all_signing_keys(self.db.session, retired_after=since)
        return {"keys": [dict(key.public_jwk) for key in keys]}

    @rpc
    def rotate_signing_key(self):
        """A new key signs from now on; the previous ones are retired (still published
        until their tokens expire). Emits ``signing_key_rotated``."""
        session = self.db.session
        models.lock_key_ring(session)
        now = utcnow()
        record = self._add_signing_key(now)
        retired = models.retire_signing_keys(session, now, keep_kid=record.kid)
        self.dispatch("signing_key_rotated", {"kid": record.kid, "retired": retired})
        created_at = isoformat_utc(record.created_at)
        return {"kid": record.kid, "created_at": created_at, "retired": retired}

    @rpc
    def signing_keys(self):
        session = self.db.session
        current = models.current_signing_key(session)
        now = utcnow()
        return [
            domain.signing_key_info(
                key,
                now,
                current.kid if current else None,
                self.settings["access_token_ttl"],
                self.settings["clock_skew"],
            )
            for key in models.all_signing_keys(session)
        ]

    # --- helpers -----------------------------------------------------------------

    def _current_signing_key(self):
        """The key that signs now; the first one is created here, once across
        workers and processes (the key-ring lock, then a second look)."""
        session = self.db.session
        record = models.current_signing_key(session)
        if record is None:
            models.lock_key_ring(session)
            record = models.current_signing_key(session)
            if record is None:
                record = self._add_signing_key(utcnow())
        return record

    def _add_signing_key(self, now):
        material = self.keys.generate()
        record = SigningKey(
            kid=material.kid,
            private_pem=material.private_pem,
            public_jwk=material.public_jwk,
            created_at=now,
        )
        self.db.session.add(record)
        self.db.session.flush()
        return record

    def _access_token(self, client_id, user_id, scope, family_id):
        record = self._current_signing_key()
        claims = domain.access_token_claims(
            self.settings, client_id, user_id, scope, family_id, utcnow()
        )
        return domain.sign_access_token(self.keys.private_key(record), record.kid, claims)

    def _add_refresh_token(self, client_id, user_id, scope, family_id, now, parent=None):
        token = domain.new_token()
        self.db.session.add(
            RefreshToken(
                token_hash=domain.token_hash(token),
                family_id=family_id,
                parent_id=parent.id if parent is not None else None,
                client_id=client_id,
                user_id=user_id,
                scope=scope,
                issued_at=now,
                expires_at=domain.refresh_expiry(
                    now,
                    self.settings["refresh_token_ttl"],
                    parent.expires_at if parent is not None else None,
                ),
            )
        )
        return token

    def _join_family(self, family_id, client_id, user_id):
        """Tokens may join an existing family (from one authorization code) only if
        it is the same client's and user's and not revoked."""
        session = self.db.session
        models.lock_family(session, family_id)
        for member_client, member_user, revoked in models.family_members(session, family_id):
            if revoked:
                raise InvalidGrant("the token family was revoked")
            if member_client != client_id or member_user != user_id:
                raise InvalidGrant("the token family belongs to another grant")

    def _revoke_family(self, family_id, client_id, user_id, reason, now):
        """Revoke the family (caller holds its lock); after the commit, deny its
        access tokens in Redis. Emits ``token_family_revoked`` if anything changed."""
        changed = models.revoke_family(self.db.session, family_id, reason, now)
        self.db.on_commit(lambda: self._deny_family(family_id, reason))
        if changed:
            self.dispatch(
                "token_family_revoked",
                {
                    "family_id": str(family_id),
                    "client_id": client_id,
                    "user_id": str(user_id),
                    "reason": reason,
                },
            )

    def _deny_family(self, family_id, reason, strict=False):
        """Deny the family in Redis. Unless ``strict``, a Redis error is only logged:
        the event handler and the periodic sync write it again."""
        ttl = domain.family_denylist_ttl(
            self.settings["access_token_ttl"], self.settings["clock_skew"]
        )
        try:
            self.cache.set(self.cache.key(revoked_family_key(family_id)), reason, ex=ttl)
        except redis_lib.RedisError:
            if strict:
                raise
            log.warning(
                "token family %s revoked, but Redis is unreachable: denied once it "
                "answers again (event retry, denylist sync)",
                family_id,
            )
