"""Hostile requests on the gateway's request socket, against the real gateway and bic-sim:
invalid UTF-8 is refused and never echoed (every reply is valid UTF-8 JSON), a multipart
request is refused with one reply (its extra frames dropped), an `id` comes back exactly
as sent (also a number no double holds), and the gateway goes on serving."""

import json
import os
import sys

import zmq

import harness

sys.path.insert(0, harness.source_path("tests", "gateway"))
from gwtest import Gateway, gateway_ini  # noqa: E402


def _req(endpoint):
    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    return s


def _reply(s, timeout_ms=8000):
    assert s.poll(timeout_ms), "no reply"
    parts = s.recv_multipart()
    assert len(parts) == 1, "a reply is one frame: %r" % parts
    return json.loads(parts[0].decode("utf-8", "strict"))  # raises on invalid UTF-8


def test_invalid_utf8_and_multipart():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim, Gateway(gateway_ini(sim, tmp), tmp) as gw:
        ep = gw.req
        for raw in (b'{"v":1,"op":"\xff\xfe"}',
                    b'{"v":1,"op":"ping","id":"\xc3\x28"}',
                    b'{"v":1,"op":"get","dev":0,"reg":"READ_VOUT\xed\xa0\x80"}',
                    b'{"v":1,"op":"set","dev":0,"reg":"VOUT_SET","value":27,"client":"\xc0\xaf"}'):
            s = _req(ep)
            s.send(raw)
            r = _reply(s)
            s.close()
            assert r["ok"] is False and r["error"]["code"] == "bad_request", r
            assert "not valid UTF-8" in r["error"]["message"], r
            assert "id" not in r, r
        s = _req(ep)
        s.send_multipart([b'{"v":1,"op":"ping","id":1}', b'{"v":1,"op":"ping","id":2}'])
        r = _reply(s)
        assert r["ok"] is False and "one frame" in r["error"]["message"], r
        # the same socket goes on (one reply per request), and so does the gateway
        s.send(b'{"v":1,"op":"ping","id":"K\xc3\xbchl"}')
        r = _reply(s)
        assert r["ok"] is True and r["id"] == "K\u00fchl", r
        s.close()
        assert sim.control.device(0)["registers"]["VOUT_SET"] != 2700


def test_id_echoed_as_sent():
    tmp = harness.temp_dir()
    with harness.Sim(devices=["0:24"]) as sim, Gateway(gateway_ini(sim, tmp), tmp) as gw:
        s = _req(gw.req)
        for raw_id in (b"1e400", b"-1e400", b"123456789012345678901234567890", b"0.1",
                       b'"x\\"}y"', b'{"a":[1,"]}",{"b":null}],"c":2e999}', b"[1, 2 ,3]",
                       b"17"):
            for body in (b'{"v":1,"op":"ping","id":' + raw_id + b"}",
                         b'{"id" : ' + raw_id + b' ,"v":1,"op":"nope"}'):
                s.send(body)
                assert s.poll(8000), "no reply"
                text = s.recv()
                text.decode("utf-8", "strict")
                assert b'"id":' + raw_id in text, (body, text)
                json.loads(text)  # still one valid JSON object
        s.close()


if __name__ == "__main__":
    harness.run_tests()
