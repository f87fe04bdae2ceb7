"""Discovery on the real platform: every process under `nameko run` and every
gunicorn worker is in GET /v1/ops/services with its metrics endpoint; a
service killed with SIGKILL leaves it within discovery.ttl and is back once
restarted."""

import pytest
import requests

from agora.cli import SERVICES
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

VICTIM = "notifications"  # no saga step waits on it


def services_report(api, token):
    response = api.get("/v1/ops/services", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_every_process_is_listed_with_its_metrics_endpoint(api, admin_token, user_token, platform):
    assert api.get("/v1/ops/services").status_code == 401
    customer = api.get("/v1/ops/services", headers={"Authorization": f"Bearer {user_token}"})
    assert customer.status_code == 403

    body = services_report(api, admin_token)
    assert list(body["services"]) == list(SERVICES)
    for name, service in body["services"].items():
        processes = [i["process"] for i in service["instances"]]
        assert processes == platform.processes(name), name
        [instance] = service["instances"]
        assert instance["pid"] == platform.children[name].pid
        assert service["rpc_queue"]["consumers"] == 1
        assert service["breaker"] == "closed"
        assert requests.get(instance["metrics_url"], timeout=5).status_code == 200
    workers = body["gateway"]["instances"]
    assert [w["process"] for w in workers] == [
        f"gateway-w{n}" for n in range(platform.config["gateway"]["workers"])
    ]
    assert all(requests.get(w["metrics_url"], timeout=5).status_code == 200 for w in workers)


def test_a_killed_service_leaves_the_registry_and_returns_when_restarted(
    api, admin_token, platform
):
    before = services_report(api, admin_token)["services"][VICTIM]["instances"]
    platform.kill(VICTIM)
    try:
        ttl = platform.config["discovery"]["ttl"]
        wait_until(
            lambda: services_report(api, admin_token)["services"][VICTIM]["instances"] == [],
            timeout=ttl + 10,
            what=f"the killed {VICTIM} to leave the registry",
        )
    finally:
        platform.start(VICTIM)
        platform.wait_ready()
    [after] = wait_until(
        lambda: services_report(api, admin_token)["services"][VICTIM]["instances"],
        what=f"the restarted {VICTIM} in the registry",
    )
    assert after["instance_id"] != before[0]["instance_id"]
    assert after["pid"] == platform.children[VICTIM].pid
