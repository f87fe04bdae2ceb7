import pytest
from nameko.exceptions import deserialize, serialize

from services.chassis.errors import CancellationWindowClosed, Conflict, NotFound

pytestmark = pytest.mark.unit


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


def test_a_closed_cancellation_window_crosses_rpc_with_its_own_code():
    sent = CancellationWindowClosed("too late to cancel", {"status": "confirmed"})
    error = deserialize(serialize(sent))
    assert isinstance(error, CancellationWindowClosed) and isinstance(error, Conflict)
    assert (error.status, error.code) == (409, "cancellation_window_closed")
    assert error.to_dict()["code"] == "cancellation_window_closed"
