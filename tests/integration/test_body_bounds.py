"""What one request body can cost (issue #15, 4): an 8 MB array of zeros
is refused with 400 before it is built, and the workers do not grow by
the ~300 MB of json-c objects it would have made."""
import os
import time

from conftest import AUTH, assert_openai_error, post


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):  # the peak, not the moment
                    total += int(line.split()[1])
    return total


def test_an_8mb_numeric_array_is_refused_before_it_is_built(relay):
    pids = relay.children("chat")
    before = rss_kb(pids)
    n = 4_000_000
    body = ('{"model":"gpt-4","messages":[{"role":"user","content":"x"}],"x":['
            + "0," * (n - 1) + "0]}")
    assert len(body) < 8_388_608
    t0 = time.monotonic()
    r = post(relay, "/v1/chat/completions", body, AUTH, timeout=60)
    err = assert_openai_error(r, 400, "invalid_request_error")
    assert err["message"] == ("Request body holds more than 200000 JSON values "
                              "([gateway] max_json_values)")
    assert time.monotonic() - t0 < 5
    grown = rss_kb(pids) - before
    # The body itself (8 MB) plus at most 200,000 small objects: well
    # under 64 MB; building the whole array would take ~300 MB.
    assert grown < 64 * 1024, grown
    # The worker still serves.
    ok = post(relay, "/v1/chat/completions",
              {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, AUTH)
    assert ok.status == 200
