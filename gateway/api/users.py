"""/v1/users: registration, the caller's own profile, contact verification,
and user administration.

Object-level access: a user reaches only their own record; anyone else's id
answers 404 (not 403), so ids cannot be probed. ``users:admin`` reaches all.
"""

from flask import Blueprint, jsonify

from gateway.api import created, json_body, query_args, rpc
from gateway.auth.guard import check_scopes, requires
from gateway.auth.principal import current_principal
from gateway.errors import ApiError
from gateway.limits import group
from gateway.openapi import operation
from services.chassis.errors import NotFound
from services.chassis.schemas import UUID_PATTERN, is_uuid
from services.users.schemas import (
    EMAIL_VERIFICATION_REQUEST,
    EMAIL_VERIFIED,
    PHONE_VERIFICATION_REQUEST,
    PROFILE_UPDATE,
    REGISTER_REQUEST,
    SET_ROLES_REQUEST,
    USER,
)

bp = Blueprint("users", __name__, url_prefix="/v1/users")

USER_ID = {"user_id": {"type": "string", "pattern": UUID_PATTERN}}


def _not_found():
    return ApiError(404, "not_found", "user not found")


def _own_user_id():
    principal = current_principal()
    if principal.user_id is None:
        # A client acting for itself (client_credentials) has no profile.
        raise _not_found()
    return principal.user_id


def _visible_user_id(user_id):
    """Your own record needs ``profile`` (as ``/me`` does); anyone else's needs
    ``users:admin``, and without it answers 404 so ids cannot be probed."""
    principal = current_principal()
    if not is_uuid(user_id):
        raise _not_found()
    if user_id == principal.user_id:
        check_scopes(principal, ("profile",))
    elif "users:admin" not in principal.scopes:
        raise _not_found()
    return user_id


def _user_or_404(call, *args):
    try:
        return call(*args)
    except NotFound:
        raise _not_found() from None


@bp.post("")
@operation(
    "Register a user",
    tags=("users",),
    body=REGISTER_REQUEST,
    responses={201: {"schema": USER, "headers": {"Location": {"type": "string"}}}},
    errors=(409,),
)
def register():
    payload = json_body(REGISTER_REQUEST)
    user = rpc().call("users", "register", payload)
    return created(user, f"/v1/users/{user['id']}")


@bp.get("/me")
@operation("Your own profile", tags=("users",), responses={200: USER}, errors=(404,))
@requires("profile")
def get_me():
    user_id = _own_user_id()
    return jsonify(_user_or_404(rpc().call, "users", "get_user", user_id))


@bp.patch("/me")
@operation(
    "Change your own profile",
    tags=("users",),
    body=PROFILE_UPDATE,
    responses={200: USER},
    errors=(404,),
)
@requires("profile")
def update_me():
    user_id = _own_user_id()
    changes = json_body(PROFILE_UPDATE)
    return jsonify(_user_or_404(rpc().call, "users", "update_profile", user_id, changes))


@bp.get("/verify-email")
@operation(
    "Confirm your email address (the link mailed at registration)",
    description="Public: the link's single-use token is the proof. Until the address is "
    "confirmed, nothing but this link is mailed to it. An invalid, used or expired token "
    "is a 400; POST /v1/users/me/email-verification mails a new link.",
    tags=("users",),
    query=EMAIL_VERIFICATION_REQUEST,
    responses={200: EMAIL_VERIFIED},
)
@group("write")  # it changes state: the tighter per-address limit
def verify_email():
    query = query_args(EMAIL_VERIFICATION_REQUEST)
    return jsonify(rpc().call("users", "verify_email", query["token"]))


@bp.post("/me/email-verification")
@operation(
    "Mail a new email verification link",
    description="Only while your address is not confirmed; an earlier link stops working.",
    tags=("users",),
    responses={202: USER},
    errors=(404,),
)
@requires("profile")
def resend_email_verification():
    user_id = _own_user_id()
    user = _user_or_404(rpc().call, "users", "request_email_verification", user_id)
    response = jsonify(user)
    response.status_code = 202
    return response


@bp.post("/me/phone-verification")
@operation(
    "Confirm your phone number with the code texted to it",
    description="The six-digit code texted when the phone was set (PATCH /v1/users/me with "
    "the same unconfirmed number texts a new one). A few wrong tries void the code.",
    tags=("users",),
    body=PHONE_VERIFICATION_REQUEST,
    responses={200: USER},
    errors=(404,),
)
@requires("profile")
def verify_phone():
    user_id = _own_user_id()
    payload = json_body(PHONE_VERIFICATION_REQUEST)
    return jsonify(_user_or_404(rpc().call, "users", "verify_phone", user_id, payload["code"]))


@bp.get("/<user_id>")
@operation(
    "One user: yourself (profile), or anyone with users:admin",
    tags=("users",),
    path_params=USER_ID,
    responses={200: USER},
    errors=(403, 404),
)
@requires()
def get_user(user_id):
    user_id = _visible_user_id(user_id)
    return jsonify(_user_or_404(rpc().call, "users", "get_user", user_id))


@bp.put("/<user_id>/roles")
@operation(
    "Replace a user's roles",
    tags=("users",),
    path_params=USER_ID,
    body=SET_ROLES_REQUEST,
    responses={200: USER},
    errors=(404,),
)
@requires("users:admin")
def set_roles(user_id):
    if not is_uuid(user_id):
        raise _not_found()
    payload = json_body(SET_ROLES_REQUEST)
    return jsonify(_user_or_404(rpc().call, "users", "set_roles", user_id, payload["roles"]))
