"""Every pattern of every contract runs in linear time (RE2), whatever the input.

The patterns are found by walking the contracts (every service's schemas, the
chassis, the gateway's own route and OAuth contracts, the OpenAPI document the
gateway builds, the configuration schema), not from a list kept by hand: a
pattern added tomorrow is checked too.
"""

import copy
import importlib
import pkgutil
import re

import pytest
import re2

import gateway.api
import services
from gateway.app import create_app
from gateway.openapi import build_document
from services.chassis import config as config_module
from services.chassis import schemas
from services.chassis.errors import ValidationError
from services.chassis.schemas import (
    EMAIL_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    SKU_PATTERN,
    UUID_PATTERN,
    LinearValidator,
    compile_pattern,
    pattern_matches,
    schema_patterns,
    validate,
)

pytestmark = pytest.mark.unit

# The largest string a request can carry (gateway.max_body_bytes), with room.
N = 70_000
# Characters that sit on the boundaries of the character classes the contracts
# use: letters of both cases, digits, separators, white space of every kind,
# controls, non-ASCII, and each pattern's own literal characters (added below).
PROBES = "aA0Z9.@-_~+/:#?%! \t\n\r\x0b\x00\x7f\x85\xa0é€\u2028\ufeff😀"


def _contract_modules():
    modules = [schemas, importlib.import_module("services.chassis.values")]
    for info in pkgutil.iter_modules(services.__path__):
        if info.ispkg and info.name != "chassis":
            modules.append(importlib.import_module(f"services.{info.name}.schemas"))
    modules.append(importlib.import_module("gateway.auth.contracts"))
    for info in pkgutil.iter_modules(gateway.api.__path__):
        modules.append(importlib.import_module(f"gateway.api.{info.name}"))
    return modules


def _openapi_document(config):
    config = copy.deepcopy(config)
    config["amqp"]["uri"] = "amqp://guest:guest@127.0.0.1:9/none"  # nothing listens
    config["gateway"]["rate_limits"]["enabled"] = False
    config["tracing"]["sample_rate"] = 0.0
    return build_document(create_app(config))


@pytest.fixture(scope="module")
def patterns(config):
    found = {}

    def add(pattern, where):
        found.setdefault(pattern, where)

    for module in _contract_modules():
        for name, value in vars(module).items():
            if name.endswith("_PATTERN") and isinstance(value, str):
                add(value, f"{module.__name__}.{name}")
            elif isinstance(value, dict | list | tuple):
                for pattern in schema_patterns(value):
                    add(pattern, f"{module.__name__}.{name}")
    for pattern in schema_patterns(config_module.SCHEMA):
        add(pattern, "services.chassis.config.SCHEMA")
    for pattern in schema_patterns(_openapi_document(config)):
        add(pattern, "the OpenAPI document")
    return found


def adversarial_inputs(pattern):
    """Long runs of each boundary character, bare, between "a@" and "@" (the
    shape that made the old email pattern quadratic), and followed by a
    character that makes the match fail at the very end."""
    literals = {c for c in pattern if c.isprintable() and not c.isalnum()}
    for char in sorted(set(PROBES) | literals):
        run = char * N
        yield run
        yield "a@" + run + "@"
        yield run + "!"
        yield "A" + run + "\n"


def test_the_walk_finds_the_contract_patterns(patterns):
    for known in (EMAIL_PATTERN, UUID_PATTERN, SKU_PATTERN, IDEMPOTENCY_KEY_PATTERN):
        assert known in patterns
    assert len(patterns) >= 15


def test_every_contract_pattern_compiles_with_re2(patterns):
    for pattern, where in patterns.items():
        assert isinstance(compile_pattern(pattern), re2._Regexp), where


def test_every_contract_pattern_means_the_same_in_python_re2_and_ecmascript(patterns):
    # White space is the one class the three engines disagree on: spell the set.
    for pattern, where in patterns.items():
        assert not re.search(r"\\[sS]", pattern), f"{where}: {pattern!r} uses \\s"


def test_every_contract_pattern_takes_a_maximum_size_adversarial_input(patterns):
    for pattern, where in patterns.items():
        schema = {"type": "string", "pattern": pattern}  # no maxLength: the pattern sees it all
        for text in adversarial_inputs(pattern):
            try:
                validate(schema, text)
            except ValidationError as exc:
                assert exc.details, where


def test_contract_schemas_are_checked_by_the_re2_validator():
    assert LinearValidator.VALIDATORS["pattern"] is schemas._pattern
    schema = {"type": "string", "pattern": "^[a-z]+$"}
    assert isinstance(schemas._validator(schema), LinearValidator)
    assert isinstance(config_module.linear_validator(config_module.SCHEMA), LinearValidator)


def test_the_old_quadratic_email_is_refused(config):
    from services.users.schemas import EMAIL

    text = "a@" + "." * 60000 + "@"
    assert not pattern_matches(EMAIL_PATTERN, text)
    with pytest.raises(ValidationError) as raised:
        validate(EMAIL, text)
    # Lengths first: the pattern never sees a string over maxLength.
    assert raised.value.details == {"body": "must be at most 254 characters"}


def test_a_pattern_re2_cannot_run_in_linear_time_is_refused():
    for pattern in (r"^a(?!b)", r"^(a)\1$", r"^a\Z"):
        with pytest.raises(ValueError, match="not RE2 syntax"):
            validate({"type": "string", "pattern": pattern}, "a")


def test_pattern_properties_are_refused():
    with pytest.raises(ValueError, match="patternProperties"):
        validate({"type": "object", "patternProperties": {"^a": {}}}, {"a": 1})


def test_dollar_is_the_end_of_the_text():
    assert pattern_matches(UUID_PATTERN, "00000000-0000-4000-8000-000000000000")
    assert not pattern_matches(UUID_PATTERN, "00000000-0000-4000-8000-000000000000\n")
    assert not pattern_matches(SKU_PATTERN, "SKU-1\n")


def test_a_lone_surrogate_matches_nothing_and_is_refused():
    assert not pattern_matches("^.*$", "\ud800")
    with pytest.raises(ValidationError) as raised:
        validate({"type": "object", "properties": {"name": {"type": "string"}}}, {"name": "\udc00"})
    assert "surrogate" in raised.value.details["name"]


def test_the_email_characters_are_the_old_set_in_python_and_re2():
    """The old class, read by Python's re, and the new one, read by Python's re
    and by RE2, allow exactly the same characters (every code point). The new
    one has no \\s, whose meaning differs between RE2 and ECMAScript."""
    old = r"[^@\s\x00-\x1f\x7f-\x9f\ufeff]"
    new = EMAIL_PATTERN[1 : EMAIL_PATTERN.index("]") + 1]
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    refused = re.sub(old, "", every)  # what the old class did not allow
    assert len(refused) == 86  # "@", 65 controls, 20 other white space
    assert re.sub(new, "", every) == refused
    allowed = every.translate(dict.fromkeys(map(ord, refused)))
    run = compile_pattern(f"^{new}+$")  # RE2: one pass over every allowed character
    assert run.search(allowed) is not None
    assert not any(run.search(char) for char in refused)
