"""remotecommand channel frames and the kubelet's exec Status objects."""
from __future__ import annotations

import json

import pytest

from minipod.runtime.apiserver import channels as ch


def test_frames_roundtrip_and_channel_numbers():
    assert (ch.STDIN, ch.STDOUT, ch.STDERR, ch.ERROR, ch.RESIZE, ch.CLOSE) == (0, 1, 2, 3, 4, 255)
    assert ch.encode(ch.STDOUT, b"hi") == b"\x01hi"
    assert ch.decode(b"\x00ls\n") == (0, b"ls\n")
    assert ch.decode(b"\x02") == (2, b"")
    assert ch.decode_close(ch.decode(b"\xff\x00")[1]) == ch.STDIN
    with pytest.raises(ch.ChannelError, match="empty message"):
        ch.decode(b"")
    with pytest.raises(ch.ChannelError, match="exactly one channel byte"):
        ch.decode_close(b"")
    with pytest.raises(ch.ChannelError, match="out of range"):
        ch.encode(256)


def test_resize_as_client_go_sends_it():
    frame = ch.encode_resize(100, 30)
    assert frame == b'\x04{"Width":100,"Height":30}\n'
    assert ch.decode_resize(ch.decode(frame)[1]) == (100, 30)


@pytest.mark.parametrize("payload, message", [
    (b"nope", "not JSON"), (b"[1]", "must be an object"),
    (b'{"Width":-1,"Height":2}', "Width must be an integer 0..65535"),
    (b'{"Width":1,"Height":70000}', "Height"), (b'{"Width":true,"Height":1}', "Width"),
    (b'{"Width":1.5,"Height":1}', "Width"),
])
def test_bad_resize(payload, message):
    with pytest.raises(ch.ChannelError, match=message):
        ch.decode_resize(payload)


def test_status_bytes_are_exactly_the_kubelets():
    assert ch.encode_status(ch.success_status()) == b'\x03{"metadata":{},"status":"Success"}'
    assert ch.encode_status(ch.exit_status(3)) == (
        b'\x03{"metadata":{},"status":"Failure","message":"command terminated with non-zero'
        b' exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":'
        b'[{"reason":"ExitCode","message":"3"}]}}')
    assert ch.exit_status(0) == ch.success_status()


def test_internal_error_status():
    s = ch.internal_error_status('exec: "nope": executable file not found in $PATH')
    assert s == {"metadata": {}, "status": "Failure",
                 "message": 'Internal error occurred: error executing command in container: '
                            'exec: "nope": executable file not found in $PATH',
                 "reason": "InternalError",
                 "details": {"causes": [{"message": 'error executing command in container: '
                                                    'exec: "nope": executable file not found in $PATH'}]},
                 "code": 500}
    assert ch.exit_code_of(s) is None


def test_exit_code_as_client_go_reads_it():
    for code in (0, 1, 3, 137):
        status = json.loads(ch.encode_status(ch.exit_status(code))[1:])
        assert ch.exit_code_of(status) == code
