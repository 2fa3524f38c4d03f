"""The official openai npm SDK, unmodified, through lighttpd: chat,
streaming chat, completions, embeddings (base64, as the SDK asks), models
list and retrieve, and its error objects."""
import json
import os
import subprocess

from conftest import MASTER_KEY, TREE

SDK = os.path.join(TREE, "tests", "sdk")


def ensure_sdk():
    if not os.path.exists(os.path.join(SDK, "node_modules", "openai", "package.json")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SDK,
                       check=True, capture_output=True, timeout=300)


def test_openai_sdk(relay):
    ensure_sdk()
    r = subprocess.run(["node", "compat.mjs"], cwd=SDK, capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, BASE_URL="http://127.0.0.1:%d" % relay.port,
                                API_KEY=MASTER_KEY))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    want = "tok1 tok2 tok3 tok4 tok5 "
    usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert out["chat"] == {"content": want, "usage": usage}
    assert out["stream"]["text"] == want and out["stream"]["chunks"] >= 6
    assert out["stream_usage"] == usage
    assert out["completion"]["text"] == want
    assert out["embeddings"]["n"] == 2 and out["embeddings"]["dims"] == 8
    # base64 decoded by the SDK equals the float answer (float32 rounding).
    assert abs(out["embeddings"]["first"] - out["embeddings_float_first"]) < 1e-6
    assert {"gpt-4", "gpt-3.5-turbo", "qwen3-30b-a3b"} <= set(out["models"])
    assert out["model"]["id"] == "gpt-4" and out["model"]["object"] == "model"
    assert out["error"] == {"status": 400, "type": "invalid_request_error",
                            "param": "messages", "code": "400"}
    assert out["not_found"] == {"status": 404, "param": "model"}
    assert out["auth_error"] == {"status": 401, "type": "auth_error"}
