"""Who is on the other end: the client address behind trusted reverse proxies.

Pure functions (no Flask): ``parse_trusted`` turns the ``gateway.trusted_proxies``
setting into networks once at start-up, ``resolve_client_ip`` picks the client
address for one request from the socket peer and its ``X-Forwarded-For`` headers.
"""

import ipaddress


def parse_trusted(entries):
    """``["10.0.0.1", "192.168.0.0/16", "::1"]`` -> a tuple of networks.

    Raises ``ValueError`` naming the first entry that is neither an address nor a
    network. Host bits in a CIDR are ignored (``10.1.2.3/8`` means ``10.0.0.0/8``).
    """
    networks = []
    for entry in entries or ():
        try:
            network = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        networks.append(_unmapped_network(network))
    return tuple(networks)


def parse_address(text):
    """One address as a proxy writes it, or None when it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:443``; an IPv4-mapped IPv6 address becomes its IPv4 address.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not _is_port(text[end + 1 :])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _is_port(":" + port):
            return None
        text = host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _unmapped(address)


def is_trusted(address, trusted):
    return any(address.version == net.version and address in net for net in trusted)


def resolve_client_ip(peer, forwarded_for, trusted):
    """The client's address for one request, as a string.

    ``peer`` is the socket peer (``REMOTE_ADDR``), ``forwarded_for`` the values of
    every ``X-Forwarded-For`` header in order (each may list several hops),
    ``trusted`` what :func:`parse_trusted` returned.

    An untrusted peer is the client, whatever it sent in ``X-Forwarded-For``
    (anyone can write that header). A trusted peer's header is walked from the
    right, the hops our own proxies appended, skipping trusted proxies; the first
    untrusted address is the client. A malformed hop ends the walk: the answer is
    then the last trusted hop (its report of its own peer cannot be read), never
    something to the left of the garbage, which the client may have written.
    """
    address = parse_address(peer) if peer else None
    if address is None:
        return peer or "unknown"
    if not trusted or not is_trusted(address, trusted):
        return str(address)

    hops = [hop for value in forwarded_for or () for hop in str(value).split(",")]
    if len(hops) == 1 and not hops[0].strip():
        hops = []  # an empty header says nothing, it is not a malformed hop
    for hop in reversed(hops):
        candidate = parse_address(hop)
        if candidate is None:
            return str(address)
        address = candidate
        if not is_trusted(address, trusted):
            return str(address)
    # Every hop is one of ours: the leftmost is as far as anyone can see.
    return str(address)


IPV6_LIMIT_PREFIX = 64


def limit_subject(client_address):
    """What rate limits count an address as: an IPv4 address itself, an IPv6
    address by its /64 network (one subscriber usually holds a whole /64, so
    keying by address would hand an attacker 2^64 fresh counters). Anything
    that is not an address is returned unchanged."""
    address = parse_address(client_address)
    if address is None:
        return client_address
    if address.version == 6:
        network = ipaddress.ip_network(f"{address}/{IPV6_LIMIT_PREFIX}", strict=False)
        return str(network)
    return str(address)


def _is_port(suffix):
    return suffix.startswith(":") and suffix[1:].isdigit() and len(suffix) <= 6


def _unmapped(address):
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _unmapped_network(network):
    """``::ffff:10.0.0.0/104`` -> ``10.0.0.0/8``, so it matches unmapped peers."""
    if (
        isinstance(network, ipaddress.IPv6Network)
        and network.prefixlen >= 96
        and network.network_address.ipv4_mapped is not None
    ):
        return ipaddress.ip_network(
            f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}", strict=False
        )
    return network
