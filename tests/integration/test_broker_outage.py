"""A service through a RabbitMQ outage (a TCP proxy to the broker, cut), as the
chaos suite found it: an RPC reply that cannot be published is lost and the
service lives on (it used to end the whole container)."""

from urllib.parse import urlsplit

import pytest
from nameko.exceptions import RpcTimeout
from nameko.standalone.rpc import ClusterRpcProxy

from services.chassis.messaging import _RpcConsumer, rpc
from services.chassis.service import AgoraService
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


class EchoService(AgoraService):
    name = "chassis_echo"

    @rpc
    def echo(self, value):
        return value


def test_a_reply_the_broker_cannot_take_is_lost_and_the_service_lives_on(
    start_service, service_config, config
):
    container = start_service(EchoService)
    [consumer] = [e for e in container.extensions if isinstance(e, _RpcConsumer)]
    amqp_port = urlsplit(config["amqp"]["uri"]).port or 5672
    # Replies go through a proxy to RabbitMQ, cut as a broker outage would be.
    broker = TcpProxy("127.0.0.1", amqp_port).start()
    try:
        consumer.replies.close()
        consumer.replies.amqp_uri = consumer.replies.amqp_uri.replace(
            f":{amqp_port}/", f":{broker.port}/"
        )
        with ClusterRpcProxy(service_config("tests"), timeout=10) as proxy:
            assert proxy.chassis_echo.echo("before") == "before"
            broker.cut()
        with ClusterRpcProxy(service_config("tests"), timeout=3) as proxy:
            with pytest.raises(RpcTimeout):
                proxy.chassis_echo.echo("lost")
            broker.restore()
            # The same container answers: the lost reply did not end it.
            assert proxy.chassis_echo.echo("after") == "after"
    finally:
        broker.stop()
