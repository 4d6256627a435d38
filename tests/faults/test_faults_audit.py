"""The bus audit of the fault-injection suite checked on its own: frames in bic-sim's debug-log
format with known faults in them must be caught (a checker that cannot fail proves nothing)."""

import faultlib
import harness

CMD = faultlib.CMD
LIMITS = {0: {CMD["VOUT_SET"]: (1900, 2800), CMD["IOUT_SET"]: (90, 3000),
              CMD["REVERSE_VOUT_SET"]: (2400, 2800), CMD["REVERSE_IOUT_SET"]: (90, 2500),
              CMD["OPERATION"]: (0, 1), CMD["DIRECTION_CTRL"]: (0, 1),
              CMD["BIDIRECTIONAL_CONFIG"]: (0, 1), CMD["SYSTEM_CONFIG"]: (0, 0x0607)}}


def _log(*lines):
    return "\n".join("bic-sim debug: %s" % line for line in lines) + "\n"


def _audit(text, killed=False):
    return faultlib.audit_frames(faultlib.parse_frames(text), LIMITS, killed)


def test_clean_session_passes():
    a = _audit(_log("rx 000C0300#3000", "tx 000C0200#3000B80B",
                    "rx 000C0300#3000D007",        # IOUT_SET 20.00 A
                    "rx 000C0300#3000", "tx 000C0200#3000D007",
                    "rx 000C0300#000000",          # OPERATION off
                    "rx 000C0300#0000", "tx 000C0200#000000",
                    "rx 000C0300#C2000300",        # SYSTEM_CONFIG 0x0003
                    "rx 000C0300#C200"))
    assert not a.violations and not a.unverified, (a.violations, a.unverified)
    assert a.writes == 3 and a.persisted == {0: 3}, (a.writes, a.persisted)


def test_out_of_limit_writes_are_caught():
    a = _audit(_log("rx 000C0300#3000B90B", "rx 000C0300#3000",    # IOUT_SET 30.01 A
                    "rx 000C0300#20005A0A", "rx 000C0300#2000",    # VOUT_SET 26.50 V: fine
                    "rx 000C0300#20000F0B", "rx 000C0300#2000",    # VOUT_SET 28.31 V
                    "rx 000C0300#20015F09", "rx 000C0300#2001",    # REVERSE_VOUT 23.99 V
                    "rx 000C0300#000002", "rx 000C0300#0000",      # OPERATION 2
                    "rx 000C0300#C2000700", "rx 000C0300#C200",    # OPERATION_INIT 11
                    "rx 000C0300#C2001000", "rx 000C0300#C200",    # reserved bit 4
                    "rx 000C0305#3000D007", "rx 000C0305#3000"))   # unknown device 5
    text = "\n".join(a.violations)
    assert len(a.violations) == 7, text
    for what in ("IOUT_SET = 3001", "VOUT_SET = 2831", "REVERSE_VOUT_SET = 2399",
                 "OPERATION = 2", "SYSTEM_CONFIG = 7",
                 "SYSTEM_CONFIG = 16", "device 5"):
        assert what in text, (what, text)


def test_unverified_writes_are_caught():
    a = _audit(_log("rx 000C0300#3000D007",       # written ...
                    "rx 000C0300#6000",           # ... another register read ...
                    "rx 000C0300#3000E803",       # ... and written again without a read-back
                    "rx 000C0300#3000",
                    "rx 000C0300#30000A08"))      # never read back
    assert len(a.unverified) == 2, a.unverified
    # The same tail in an incarnation that was killed under it is exempt.
    a = _audit(_log("rx 000C0300#3000D007", "rx 000C0300#3000", "rx 000C0300#30000A08"),
               killed=True)
    assert not a.unverified and len(a.tail_unverified) == 1, (a.unverified, a.tail_unverified)


if __name__ == "__main__":
    harness.run_tests()
