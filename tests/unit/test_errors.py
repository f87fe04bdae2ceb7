from nameko.exceptions import deserialize, serialize

from services.chassis.errors import Conflict, NotFound


def test_named_errors_cross_rpc_as_themselves():
    error = deserialize(serialize(Conflict("sku already exists", {"sku": "already exists"})))
    assert isinstance(error, Conflict)
    assert error.message == "sku already exists"
    assert error.details == {"sku": "already exists"}
    assert error.to_dict() == {
        "code": "conflict",
        "message": "sku already exists",
        "details": {"sku": "already exists"},
    }


def test_errors_without_details_keep_none():
    error = deserialize(serialize(NotFound("user not found")))
    assert isinstance(error, NotFound)
    assert error.details is None
    assert str(error) == "user not found"
