"""The client address behind trusted proxies: pure logic, no I/O."""

import pytest

from gateway.netaddr import limit_subject, parse_address, parse_trusted, resolve_client_ip

pytestmark = pytest.mark.unit

LB = parse_trusted(["10.0.0.1"])
PROXIES = parse_trusted(["10.0.0.0/8", "192.168.1.7", "2001:db8:ff::/48", "::1"])


def client(peer, *xff, trusted=PROXIES):
    return resolve_client_ip(peer, list(xff), trusted)


def test_no_trusted_proxies_means_the_peer_is_the_client():
    assert client("203.0.113.9", "198.51.100.1", trusted=()) == "203.0.113.9"


def test_untrusted_peer_cannot_spoof_with_x_forwarded_for():
    assert client("203.0.113.9", "198.51.100.1") == "203.0.113.9"
    assert client("203.0.113.9", "10.0.0.2, 198.51.100.1") == "203.0.113.9"
    # Not even by claiming to be one of our proxies.
    assert client("203.0.113.9", "10.0.0.1") == "203.0.113.9"


def test_trusted_peer_forwards_the_client():
    assert client("10.0.0.1", "198.51.100.1", trusted=LB) == "198.51.100.1"
    assert client("10.1.2.3", "198.51.100.1") == "198.51.100.1"


def test_trusted_peer_without_header_is_the_client():
    assert client("10.0.0.1", trusted=LB) == "10.0.0.1"
    assert client("10.0.0.1", "", trusted=LB) == "10.0.0.1"


def test_exact_address_is_not_a_network():
    assert client("10.0.0.2", "198.51.100.1", trusted=LB) == "10.0.0.2"
    assert client("192.168.1.8", "198.51.100.1") == "192.168.1.8"
    assert client("192.168.1.7", "198.51.100.1") == "198.51.100.1"


def test_multi_hop_walks_from_the_right_skipping_trusted_proxies():
    # client -> CDN-ish hop 10.2.0.1 (ours) -> LB 10.0.0.1 (ours) -> gateway
    assert client("10.0.0.1", "198.51.100.1, 10.2.0.1") == "198.51.100.1"
    # Several headers are one list, in order.
    assert client("10.0.0.1", "198.51.100.1", "10.2.0.1") == "198.51.100.1"


def test_addresses_left_of_the_first_untrusted_hop_are_ignored():
    # The client wrote "1.1.1.1" itself; our proxy appended what it saw.
    assert client("10.0.0.1", "1.1.1.1, 198.51.100.1") == "198.51.100.1"
    assert client("10.0.0.1", "1.1.1.1, 198.51.100.1, 10.2.0.1") == "198.51.100.1"


def test_all_hops_trusted_gives_the_leftmost():
    assert client("10.0.0.1", "10.9.9.9, 10.2.0.1") == "10.9.9.9"


def test_garbage_stops_the_walk_at_the_last_trusted_hop():
    assert client("10.0.0.1", "not-an-ip") == "10.0.0.1"
    assert client("10.0.0.1", "198.51.100.1, garbage, 10.2.0.1") == "10.2.0.1"
    assert client("10.0.0.1", "198.51.100.1, unknown") == "10.0.0.1"
    assert client("10.0.0.1", "198.51.100.1,, 10.2.0.1") == "10.2.0.1"
    assert client("10.0.0.1", "999.1.1.1") == "10.0.0.1"
    assert client("10.0.0.1", "1.2.3.4:notaport") == "10.0.0.1"
    # Garbage to the left of the client does not matter.
    assert client("10.0.0.1", "garbage, 198.51.100.1") == "198.51.100.1"


def test_ports_and_brackets_are_accepted():
    assert client("10.0.0.1", "198.51.100.1:51234") == "198.51.100.1"
    assert client("10.0.0.1", "[2001:db8::5]:443") == "2001:db8::5"
    assert client("10.0.0.1", "[2001:db8::5]") == "2001:db8::5"


def test_ipv6_peers_and_hops():
    assert client("2001:db8:ff::1", "2001:db8::5") == "2001:db8::5"
    assert client("2001:db8:ff:1::9", "198.51.100.1") == "198.51.100.1"
    assert client("2001:db8:fe::1", "198.51.100.1") == "2001:db8:fe::1"
    assert client("::1", "2001:DB8:0:0::5") == "2001:db8::5"  # normalized
    assert client("2001:db8::5") == "2001:db8::5"


def test_ipv4_mapped_ipv6_is_treated_as_ipv4():
    assert client("::ffff:10.0.0.1", "198.51.100.1") == "198.51.100.1"
    assert client("::ffff:203.0.113.9", "198.51.100.1") == "203.0.113.9"
    assert client("10.0.0.1", "::ffff:198.51.100.1") == "198.51.100.1"
    mapped = parse_trusted(["::ffff:10.0.0.0/104"])
    assert client("10.1.1.1", "198.51.100.1", trusted=mapped) == "198.51.100.1"


def test_unreadable_peer_is_returned_as_is():
    assert client(None, "198.51.100.1") == "unknown"
    assert client("", "198.51.100.1") == "unknown"
    assert client("unix-socket", "198.51.100.1") == "unix-socket"


def test_parse_trusted():
    nets = parse_trusted(["10.1.2.3/8", " 192.168.0.1 ", "2001:db8::/32"])
    assert [str(n) for n in nets] == ["10.0.0.0/8", "192.168.0.1/32", "2001:db8::/32"]
    assert parse_trusted([]) == ()
    assert parse_trusted(None) == ()
    with pytest.raises(ValueError, match="'nope'"):
        parse_trusted(["10.0.0.1", "nope"])
    with pytest.raises(ValueError):
        parse_trusted(["10.0.0.0/33"])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("1.2.3.4:80", "1.2.3.4"),
        ("::1", "::1"),
        ("[::1]:8080", "::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("", None),
        ("1.2.3.4:", None),
        ("1.2.3.4:1234567", None),
        ("[::1", None),
        ("[::1]x", None),
        ("1.2.3", None),
        ("example.com", None),
        (None, None),
    ],
)
def test_parse_address(text, expected):
    address = parse_address(text)
    assert (str(address) if address is not None else None) == expected


def test_rate_limits_count_ipv6_by_its_64_network():
    # Every address of one /64 is one subject; the next /64 is another.
    assert limit_subject("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert limit_subject("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert limit_subject("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert limit_subject("::1") == "::/64"


def test_rate_limits_count_ipv4_by_address():
    assert limit_subject("203.0.113.9") == "203.0.113.9"
    assert limit_subject("203.0.113.10") == "203.0.113.10"
    # An IPv4-mapped IPv6 peer is its IPv4 address, not the ::ffff:0:0/64 network.
    assert limit_subject("::ffff:203.0.113.9") == "203.0.113.9"
    assert limit_subject("unknown") == "unknown"
