"""LiteLLM's own end-to-end behaviours, written our way: the calls and
checks of BerriAI/litellm's tests/test_keys.py, test_users.py and
test_spend_logs.py (concurrent key generation, update then use, delete,
who may read /key/info, spend that equals the cost of what was served,
streamed spend through the official openai SDK, a budget crossed), driven
with aiohttp as those tests are, against llmgw through lighttpd. Where
llmgw differs on purpose the assertion says so."""
import asyncio
import json
import os
import subprocess

import aiohttp
import pytest

from conftest import MASTER_KEY, RAW_KEYS, TREE
from test_openai_sdk import SDK, ensure_sdk

PRICE_IN, PRICE_OUT = 2.0, 6.0  # USD per 1M tokens, as LiteLLM's cost map has them
ADMIN = {"Authorization": "Bearer " + MASTER_KEY}


@pytest.fixture(scope="module")
def proxy(make_stack, mock):
    return make_stack("litellm-e2e", mock.url, [
        "prices.qwen3-30b-a3b=%s %s" % (PRICE_IN, PRICE_OUT),
        "spend.budget_refresh_ms=200",
    ])


def run(coro):
    return asyncio.run(coro)


def url(proxy, path):
    return "http://127.0.0.1:%d%s" % (proxy.port, path)


async def call(session, method, u, key=MASTER_KEY, body=None):
    h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    async with session.request(method, u, headers=h, json=body) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text else None), r.headers


async def generate_key(session, proxy, **fields):
    body = {"models": ["azure-models", "gpt-4", "dall-e-3"],
            "aliases": {"mistral-7b": "gpt-3.5-turbo"}, "duration": None}
    body.update(fields)
    st, out, _ = await call(session, "POST", url(proxy, "/key/generate"), body=body)
    assert st == 200, out
    RAW_KEYS.append(out["key"])
    return out


async def chat(session, proxy, key, model="gpt-4"):
    body = {"model": model, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"}]}
    return await call(session, "POST", url(proxy, "/chat/completions"), key, body)


async def key_info(session, proxy, call_key, get_key=None):
    q = "/key/info" if get_key is None else "/key/info?key=" + get_key
    return await call(session, "GET", url(proxy, q), call_key)


async def wait_spend(session, proxy, key, want, timeout=10):
    spend = None
    for _ in range(int(timeout * 10)):
        st, info, _ = await key_info(session, proxy, key, key)
        assert st == 200, info
        spend = info["info"]["spend"]
        if spend == pytest.approx(want, rel=1e-9, abs=1e-15):
            return spend
        await asyncio.sleep(0.1)
    return spend


def cost(usage):
    return (usage["prompt_tokens"] * PRICE_IN + usage["completion_tokens"] * PRICE_OUT) / 1e6


def test_key_gen(proxy):
    """Ten keys generated at once: ten distinct keys."""
    async def go():
        async with aiohttp.ClientSession() as s:
            keys = await asyncio.gather(*[generate_key(s, proxy) for _ in range(10)])
            assert len({k["key"] for k in keys}) == 10
            assert all(k["key"].startswith("sk-") for k in keys)
    run(go())


def test_key_update_then_use(proxy):
    """Create, narrow its models to gpt-4, call gpt-4: 200; another model: refused."""
    async def go():
        async with aiohttp.ClientSession() as s:
            k = (await generate_key(s, proxy))["key"]
            st, out, _ = await call(s, "POST", url(proxy, "/key/update"),
                                    body={"key": k, "models": ["gpt-4"]})
            assert st == 200, out
            st, out, _ = await chat(s, proxy, k)
            assert st == 200, out
            st, out, _ = await chat(s, proxy, k, model="gpt-3.5-turbo")
            assert st == 401 and out["error"]["type"] == "key_model_access_denied"
    run(go())


def test_key_delete(proxy):
    async def go():
        async with aiohttp.ClientSession() as s:
            k = (await generate_key(s, proxy))["key"]
            st, out, _ = await call(s, "POST", url(proxy, "/key/delete"), body={"keys": [k]})
            assert st == 200, out
            for _ in range(50):  # every worker hears of it within milliseconds
                st, out, _ = await chat(s, proxy, k)
                if st == 401:
                    break
                await asyncio.sleep(0.05)
            assert st == 401
    run(go())


def test_key_info_access(proxy):
    """As admin: 200; as the key itself (with and without ?key=): 200; as
    another key: 403."""
    async def go():
        async with aiohttp.ClientSession() as s:
            k = (await generate_key(s, proxy))["key"]
            for caller, get in ((MASTER_KEY, k), (k, k), (k, None)):
                st, out, _ = await key_info(s, proxy, caller, get)
                assert st == 200, out
                assert out["info"]["models"] == ["azure-models", "gpt-4", "dall-e-3"]
            other = (await generate_key(s, proxy))["key"]
            st, out, _ = await key_info(s, proxy, other, k)
            assert st == 403
    run(go())


def test_key_info_spend_values(proxy):
    """One completion: the key's spend is exactly the cost of its tokens,
    and the answer said so in x-litellm-response-cost."""
    async def go():
        async with aiohttp.ClientSession() as s:
            k = (await generate_key(s, proxy))["key"]
            st, out, h = await chat(s, proxy, k)
            assert st == 200, out
            want = cost(out["usage"])
            assert want > 0
            assert float(h["x-litellm-response-cost"]) == pytest.approx(want, rel=1e-9)
            rid = h["x-request-id"]
            assert await wait_spend(s, proxy, k, want) == pytest.approx(want, rel=1e-9)
            st, rows, _ = await call(s, "GET", url(proxy, "/spend/logs?request_id=" + rid))
            assert st == 200 and len(rows) == 1
            # LiteLLM's test looks the row up by the completion's own id.
            st, by_id, _ = await call(s, "GET", url(proxy, "/spend/logs?request_id=" + out["id"]))
            assert st == 200 and [r["request_id"] for r in by_id] == [rid]
            assert by_id[0]["call_type"] == "acompletion"
            assert rows[0]["prompt_tokens"] == out["usage"]["prompt_tokens"]
            assert rows[0]["completion_tokens"] == out["usage"]["completion_tokens"]
            assert rows[0]["spend"] == pytest.approx(want, rel=1e-9)
    run(go())


def test_key_info_spend_values_streaming(proxy):
    """A stream through the official openai SDK: spend equals the cost of
    the usage the stream reported (LiteLLM users saw 0 here)."""
    ensure_sdk()

    async def go():
        async with aiohttp.ClientSession() as s:
            k = (await generate_key(s, proxy))["key"]
            r = subprocess.run(["node", "stream_spend.mjs"], cwd=SDK, capture_output=True,
                               text=True, timeout=120,
                               env=dict(os.environ, API_KEY=k,
                                        BASE_URL=url(proxy, "/v1"), MODEL="gpt-4"))
            assert r.returncode == 0, r.stderr
            out = json.loads(r.stdout)
            assert out["content"] and out["usage"]["completion_tokens"] > 0
            want = cost(out["usage"])
            assert await wait_spend(s, proxy, k, want) == pytest.approx(want, rel=1e-9)
    run(go())


def test_key_crossing_budget(proxy):
    """A budget of 1e-7 USD: the first call is served (spend is known only
    after it), the next is refused with 400 budget_exceeded."""
    async def go():
        async with aiohttp.ClientSession() as s:
            k = (await generate_key(s, proxy, max_budget=0.0000001))["key"]
            st, out, _ = await chat(s, proxy, k)
            assert st == 200, out
            await wait_spend(s, proxy, k, cost(out["usage"]))
            for _ in range(50):
                st, out, _ = await chat(s, proxy, k)
                if st != 200:
                    break
                await asyncio.sleep(0.1)
            assert st == 400, out
            assert out["error"]["type"] == "budget_exceeded"
            assert "Budget has been exceeded!" in out["error"]["message"]
    run(go())
