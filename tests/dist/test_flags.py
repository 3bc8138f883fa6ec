"""The capability flags: values as OTP's dist.h has them, the sets, the mandatory check."""

from __future__ import annotations

import pytest

from server.dist.flags import (
    HIDDEN_FLAGS,
    MANDATORY,
    MANDATORY_25,
    VISIBLE_FLAGS,
    DistFlag,
    describe,
    missing_mandatory,
)

# Values from the reference's table (§1.3), checked one by one: the easy place to go wrong.
EXPECTED = {
    "PUBLISHED": 0x1,
    "EXTENDED_REFERENCES": 0x4,
    "DIST_MONITOR": 0x8,
    "FUN_TAGS": 0x10,
    "DIST_MONITOR_NAME": 0x20,
    "NEW_FUN_TAGS": 0x80,
    "EXTENDED_PIDS_PORTS": 0x100,
    "EXPORT_PTR_TAG": 0x200,
    "BIT_BINARIES": 0x400,
    "NEW_FLOATS": 0x800,
    "DIST_HDR_ATOM_CACHE": 0x2000,
    "SMALL_ATOM_TAGS": 0x4000,
    "UTF8_ATOMS": 0x10000,
    "MAP_TAG": 0x20000,
    "BIG_CREATION": 0x40000,
    "SEND_SENDER": 0x80000,
    "EXIT_PAYLOAD": 0x400000,
    "FRAGMENTS": 0x800000,
    "HANDSHAKE_23": 0x1000000,
    "UNLINK_ID": 0x2000000,
    "MANDATORY_25_DIGEST": 0x4000000,
    "SPAWN": 1 << 32,
    "NAME_ME": 1 << 33,
    "V4_NC": 1 << 34,
    "ALIAS": 1 << 35,
    "ALTACT_SIG": 1 << 37,
}


@pytest.mark.parametrize(("name", "value"), EXPECTED.items(), ids=list(EXPECTED))
def test_flag_value(name: str, value: int) -> None:
    assert DistFlag[name] == value


def test_every_flag_is_one_bit() -> None:
    for flag in DistFlag:
        assert flag.value.bit_count() == 1, flag


def test_the_sets() -> None:
    assert MANDATORY == 0x403070F94
    assert MANDATORY.bit_count() == 13
    assert MANDATORY_25.bit_count() == 11
    assert HIDDEN_FLAGS == 0xD03CF2FBC
    assert VISIBLE_FLAGS == HIDDEN_FLAGS | DistFlag.PUBLISHED == 0xD03CF2FBD
    assert not HIDDEN_FLAGS & DistFlag.PUBLISHED
    assert not HIDDEN_FLAGS & (DistFlag.NAME_ME | DistFlag.ALTACT_SIG)


def test_otp_25_advertises_every_mandatory_flag() -> None:
    assert missing_mandatory(0xD07DF7FBD) == 0


def test_missing_flags_are_named() -> None:
    missing = missing_mandatory(MANDATORY & ~DistFlag.MAP_TAG & ~DistFlag.V4_NC)
    assert missing == DistFlag.MAP_TAG | DistFlag.V4_NC
    assert describe(missing) == ["MAP_TAG", "V4_NC"]


def test_the_digest_flag_stands_for_the_otp_25_flags() -> None:
    flags = DistFlag.MANDATORY_25_DIGEST | DistFlag.UNLINK_ID | DistFlag.V4_NC
    assert missing_mandatory(flags) == 0
    assert missing_mandatory(DistFlag.MANDATORY_25_DIGEST) == DistFlag.UNLINK_ID | DistFlag.V4_NC


def test_nothing_missing_from_nothing_demanded() -> None:
    assert missing_mandatory(0, mandatory=0) == 0
    assert missing_mandatory(0) == MANDATORY


def test_describe_names_unknown_bits_in_hex() -> None:
    assert describe(0) == []
    assert describe(DistFlag.PUBLISHED | (1 << 40)) == ["PUBLISHED", "0x10000000000"]
    assert describe(1 << 36) == ["0x1000000000"]
