"""How the auth service stores its RSA signing keys: PKCS#8, encrypted with PBES2
using scrypt and AES-256-CBC (RFC 8018 with RFC 7914's scrypt).

``cryptography``'s ``BestAvailableEncryption`` writes PKCS#8 with PBES2 over
PBKDF2-HMAC-SHA256 at only 2,048 iterations, and its encryption builder (which
sets the rounds) is not offered for PKCS#8; so the ``EncryptedPrivateKeyInfo``
is written here, and read back by ``cryptography``'s own loader, which knows
PBES2/scrypt. Keys written before this module (PBKDF2, 2,048 rounds) stay
readable; :func:`is_weak` tells the service to write them again.
"""

import base64
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# scrypt cost: 2^15 x 8 x 128 bytes = 32 MiB and about a third of a second per
# derivation, paid once per key generation and once per key per process (the
# decrypted key is kept in memory). RFC 7914 section 2 bounds N below 2^(128r/8).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32

PBES2 = "1.2.840.113549.1.5.13"
PBKDF2 = "1.2.840.113549.1.5.12"
SCRYPT = "1.3.6.1.4.1.11591.4.11"
AES256_CBC = "2.16.840.1.101.3.4.1.42"

_PEM_LABEL = "ENCRYPTED PRIVATE KEY"


@dataclass(frozen=True)
class KeyDerivation:
    """The KDF of a stored key: ``name`` is ``scrypt`` or ``pbkdf2`` (or the OID
    of anything else); ``cost`` is scrypt's N or PBKDF2's iteration count."""

    name: str
    cost: int | None


def encrypt_private_key(private_key, passphrase):
    """``private_key`` (a ``cryptography`` key) as a PKCS#8 PEM encrypted with
    PBES2/scrypt/AES-256-CBC under ``passphrase`` (bytes). CPU-heavy: offload it."""
    plain = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(SALT_BYTES)
    iv = os.urandom(16)
    key = Scrypt(salt=salt, length=KEY_BYTES, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    scrypt_params = _sequence(
        _octets(salt),
        _integer(SCRYPT_N),
        _integer(SCRYPT_R),
        _integer(SCRYPT_P),
        _integer(KEY_BYTES),
    )
    algorithm = _sequence(
        _oid(PBES2),
        _sequence(
            _sequence(_oid(SCRYPT), scrypt_params),
            _sequence(_oid(AES256_CBC), _octets(iv)),
        ),
    )
    der = _sequence(algorithm, _octets(encrypted))
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {_PEM_LABEL}-----", *lines, f"-----END {_PEM_LABEL}-----", ""])


def key_derivation(pem):
    """The KDF a stored encrypted PKCS#8 PEM uses; ValueError if it is not one."""
    text = pem.strip()
    begin, end = f"-----BEGIN {_PEM_LABEL}-----", f"-----END {_PEM_LABEL}-----"
    if not (text.startswith(begin) and text.endswith(end)):
        raise ValueError("not an encrypted PKCS#8 PEM")
    der = base64.b64decode("".join(text[len(begin) : -len(end)].split()))
    info = _children(_expect(der, 0x30))
    algorithm = _children(_expect(info[0], 0x30))
    if _read_oid(algorithm[0]) != PBES2:
        return KeyDerivation(_read_oid(algorithm[0]), None)
    params = _children(_expect(algorithm[1], 0x30))
    kdf = _children(_expect(params[0], 0x30))
    kdf_oid = _read_oid(kdf[0])
    kdf_params = _children(_expect(kdf[1], 0x30))
    # scrypt: salt, N, r, p[, keyLength]; PBKDF2: salt, iterationCount, ...
    cost = _read_integer(kdf_params[1])
    names = {SCRYPT: "scrypt", PBKDF2: "pbkdf2"}
    return KeyDerivation(names.get(kdf_oid, kdf_oid), cost)


def is_weak(pem):
    """True when the stored key should be encrypted again with :data:`SCRYPT_N`."""
    try:
        found = key_derivation(pem)
    except (ValueError, IndexError):
        return True
    return found.name != "scrypt" or found.cost is None or found.cost < SCRYPT_N


# --- a little DER, enough for EncryptedPrivateKeyInfo ----------------------------


def _tlv(tag, content):
    length = len(content)
    if length < 0x80:
        head = bytes([length])
    else:
        size = length.to_bytes((length.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + head + content


def _sequence(*items):
    return _tlv(0x30, b"".join(items))


def _octets(value):
    return _tlv(0x04, value)


def _integer(value):
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")  # room for the sign bit
    return _tlv(0x02, raw)


def _oid(dotted):
    numbers = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * numbers[0] + numbers[1]])
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _split(data):
    """``(tag, content, rest)`` of the first TLV in ``data``."""
    if len(data) < 2:
        raise ValueError("truncated DER")
    tag, length, offset = data[0], data[1], 2
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4 or len(data) < 2 + size:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[2 : 2 + size], "big")
        offset += size
    if len(data) < offset + length:
        raise ValueError("truncated DER")
    return tag, data[offset : offset + length], data[offset + length :]


def _expect(data, tag):
    found, content, _rest = _split(data)
    if found != tag:
        raise ValueError(f"expected DER tag {tag:#x}, found {found:#x}")
    return content


def _children(content):
    items = []
    while content:
        tag, _inner, rest = _split(content)
        items.append(content[: len(content) - len(rest)])
        content = rest
    return items


def _read_integer(data):
    return int.from_bytes(_expect(data, 0x02), "big", signed=True)


def _read_oid(data):
    body = _expect(data, 0x06)
    numbers = [body[0] // 40, body[0] % 40]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    return ".".join(str(number) for number in numbers)
