"""/v1/users"""

from flask import Blueprint, jsonify

from gateway.api import json_body, rpc
from services.users.schemas import REGISTER_REQUEST

bp = Blueprint("users", __name__, url_prefix="/v1/users")


@bp.post("")
def register():
    payload = json_body(REGISTER_REQUEST)
    user = rpc().call("users", "register", payload)
    response = jsonify(user)
    response.status_code = 201
    response.headers["Location"] = f"/v1/users/{user['id']}"
    return response
