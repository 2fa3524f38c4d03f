#!/usr/bin/env python3
"""Langfuse ingestion stand-in for llmgw tests (Python 3.11 stdlib only).

Speaks the legacy batch API (POST /api/public/ingestion) and the OTLP/HTTP
JSON trace API (POST /api/public/otel/v1/traces), validates every event and
span, records what it accepted and what it rejected, and can inject faults.
See README.md next to this file for the full surface.
"""
import argparse
import base64
import copy
import json
import math
import os
import re
import signal
import sys
import threading
import time
import zlib
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INGEST_PATH = "/api/public/ingestion"
OTEL_PATH = "/api/public/otel/v1/traces"
MAX_BODY = int(4.5 * 1024 * 1024)        # the real route rejects larger bodies
DOC_BATCH_LIMIT = int(3.5 * 1024 * 1024)  # documented batch limit -> warning
HARD_CAP = 64 * 1024 * 1024              # beyond this we do not even read
MODES = ("ok", "fail_half", "down", "error500", "rate_limit", "slow")
LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
UNITS = ("CHARACTERS", "TOKENS", "MILLISECONDS", "SECONDS", "IMAGES", "REQUESTS")
OTEL_OBS_TYPES = ("span", "generation", "event", "agent", "tool", "chain",
                  "retriever", "evaluator", "embedding", "guardrail")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ENV_RE = re.compile(r"^(?!langfuse)[a-z0-9_-]+$")
HEX_RE = {32: re.compile(r"^[0-9a-fA-F]{32}$"), 16: re.compile(r"^[0-9a-fA-F]{16}$")}
INT_RE = re.compile(r"^-?\d+$")


class Invalid(Exception):
    """One format violation; the message says where and what."""


def need(cond, msg):
    if not cond:
        raise Invalid(msg)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v):
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


# ---------------------------------------------------------------- field checks
# Each check(value, where) raises Invalid. None is always allowed for optional
# fields (Langfuse uses zod .nullish() throughout).

def check(pred, what):
    """A field check: check(value, where) raises Invalid unless pred(value)."""
    def c(v, w):
        need(pred(v), f"{w}: must be {what}, got {v!r:.60}")
    return c


def parse_ts(v, w):
    need(isinstance(v, str) and ISO_RE.match(v), f"{w}: must be an ISO-8601 datetime with "
         f"offset such as 2024-05-01T12:00:00.123Z, got {v!r:.60}")
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{w}: not a valid date/time: {v!r}") from None


c_id = check(lambda v: isinstance(v, str) and 1 <= len(v) <= 800 and "\r" not in v,
             "a string of 1..800 characters without \\r")
c_str = check(lambda v: isinstance(v, str), "a string")
c_any = check(lambda v: True, "anything")
c_bool = check(lambda v: isinstance(v, bool), "a boolean")
c_int = check(is_int, "an integer")
c_ts = parse_ts
c_env = check(lambda v: isinstance(v, str) and len(v) <= 40 and ENV_RE.match(v),
              "[a-z0-9_-]+, at most 40 characters, not starting with 'langfuse'")
c_level = check(lambda v: v in LEVELS, "one of " + "|".join(LEVELS))
c_tags = check(lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of strings")
c_trace_name = check(lambda v: isinstance(v, str) and len(v) <= 1000, "a string of at most 1000 characters")


def c_model_params(v, w):
    need(isinstance(v, dict), f"{w}: must be an object")
    for k, x in v.items():
        ok = (x is None or isinstance(x, (str, bool)) or is_num(x)
              or (isinstance(x, list) and all(isinstance(i, str) for i in x))
              or (isinstance(x, dict) and all(isinstance(i, str) for i in x.values())))
        need(ok, f"{w}.{k}: must be string, number, boolean, string[] or map of strings")


def c_usage(v, w):  # legacy 'usage' (MixedUsage)
    need(isinstance(v, dict), f"{w}: must be an object")
    for k, x in v.items():
        if x is None:
            continue
        if k in ("input", "output", "total", "promptTokens", "completionTokens", "totalTokens"):
            need(is_int(x), f"{w}.{k}: must be an integer")
        elif k in ("inputCost", "outputCost", "totalCost"):
            need(is_num(x), f"{w}.{k}: must be a number")
        elif k == "unit":
            need(x in UNITS, f"{w}.unit: must be one of {'|'.join(UNITS)}")


def _nonneg_int_map(v, w):
    need(isinstance(v, dict), f"{w}: must be an object")
    for k, x in v.items():
        need(x is None or (is_int(x) and x >= 0), f"{w}.{k}: must be a non-negative integer, got {x!r:.40}")


def c_usage_details(v, w):
    # Langfuse accepts a flat map string -> int >= 0, or the exact OpenAI
    # chat-completions / responses usage objects (with *_details sub-maps).
    need(isinstance(v, dict), f"{w}: must be an object")
    for a, b in (("prompt", "completion"), ("input", "output")):
        keys = {f"{a}_tokens", f"{b}_tokens", "total_tokens"}
        if keys <= set(v) and set(v) <= keys | {f"{a}_tokens_details", f"{b}_tokens_details"}:
            for k, x in v.items():
                if k.endswith("_details"):
                    if x is not None:
                        _nonneg_int_map(x, f"{w}.{k}")
                else:
                    need(is_int(x) and x >= 0, f"{w}.{k}: must be a non-negative integer")
            return
    _nonneg_int_map(v, w)


def c_cost_details(v, w):
    need(isinstance(v, dict), f"{w}: must be an object")
    for k, x in v.items():
        need(x is None or (is_num(x) and x >= 0), f"{w}.{k}: must be a non-negative number, got {x!r:.40}")


TRACE = dict(id=c_id, timestamp=c_ts, name=c_trace_name, externalId=c_str, input=c_any,
             output=c_any, sessionId=c_str, userId=c_str, environment=c_env, metadata=c_any,
             release=c_str, version=c_str, public=c_bool, tags=c_tags)
OBS = dict(id=c_id, traceId=c_id, environment=c_env, name=c_str, startTime=c_ts,
           metadata=c_any, input=c_any, output=c_any, level=c_level, statusMessage=c_str,
           parentObservationId=c_str, version=c_str)
SPAN = dict(OBS, endTime=c_ts)
GEN = dict(SPAN, completionStartTime=c_ts, model=c_str, modelParameters=c_model_params,
           usage=c_usage, usageDetails=c_usage_details, costDetails=c_cost_details,
           promptName=c_str, promptVersion=c_int)
SCORE = dict(id=c_id, name=c_str, traceId=c_str, sessionId=c_str, datasetRunId=c_str,
             environment=c_env, observationId=c_str, comment=c_str, metadata=c_any,
             source=c_any, value=c_any, dataType=c_any, configId=c_str)
# event type -> (field checks, required fields, what it writes)
EVENT_TYPES = {
    "trace-create": (TRACE, (), "trace"),
    "span-create": (SPAN, ("id",), "SPAN"),
    "span-update": (SPAN, ("id",), "SPAN"),
    "generation-create": (GEN, ("id",), "GENERATION"),
    "generation-update": (GEN, ("id",), "GENERATION"),
    "event-create": (OBS, ("id",), "EVENT"),
    "score-create": (SCORE, ("name", "value"), "score"),
    "sdk-log": ({"log": c_any, "id": c_str}, ("log",), None),
}


def validate_event(ev, warn):
    """Check one legacy ingestion event; raise Invalid on the first violation."""
    need(isinstance(ev, dict), "event: must be an object")
    c_id(ev.get("id"), "id")
    need("timestamp" in ev and ev["timestamp"] is not None, "timestamp: required")
    parse_ts(ev["timestamp"], "timestamp")
    t = ev.get("type")
    need(t in EVENT_TYPES, f"type: must be one of {', '.join(EVENT_TYPES)}, got {t!r:.40}")
    spec, required, _ = EVENT_TYPES[t]
    body = ev.get("body")
    need(isinstance(body, dict), "body: must be an object")
    for f in required:
        need(body.get(f) is not None, f"body.{f}: required for {t}")
    for k, v in body.items():
        if k not in spec:
            warn(f"body.{k}: unknown field for {t}, Langfuse drops it")
        elif v is not None:
            spec[k](v, f"body.{k}")
    if t.startswith(("span-", "generation-")) and body.get("startTime") and body.get("endTime"):
        # stricter than Langfuse, which stores such observations as they are
        need(parse_ts(body["endTime"], "") >= parse_ts(body["startTime"], ""),
             "body.endTime: earlier than body.startTime")
    if t.startswith("generation-"):
        need(bool(body.get("promptName")) == bool(body.get("promptVersion")),
             "body.promptName/promptVersion: set both or neither")
    if t == "score-create":
        c_str(body["name"], "body.name")
        need(body["name"] != "", "body.name: must not be empty")
        dt, val = body.get("dataType"), body["value"]
        need(dt in (None, "NUMERIC", "CATEGORICAL", "BOOLEAN"),
             "body.dataType: must be NUMERIC, CATEGORICAL or BOOLEAN")
        if dt == "CATEGORICAL":
            c_str(val, "body.value")
        elif dt is None:
            need(isinstance(val, str) or is_num(val), "body.value: must be a number or string")
        else:
            need(is_num(val), "body.value: must be a number")
            need(dt != "BOOLEAN" or val in (0, 1), "body.value: must be 0 or 1 for BOOLEAN")


# ------------------------------------------------------------------ OTLP JSON
ANY_KEYS = ("stringValue", "boolValue", "intValue", "doubleValue", "arrayValue",
            "kvlistValue", "bytesValue")


def any_value(v, w):
    """OTLP AnyValue (JSON encoding) -> plain Python value."""
    need(isinstance(v, dict), f"{w}: AnyValue must be an object")
    if not v:
        return None
    need(len(v) == 1 and next(iter(v)) in ANY_KEYS,
         f"{w}: AnyValue must have exactly one of {', '.join(ANY_KEYS)}, got {sorted(v)}")
    k, x = next(iter(v.items()))
    if k == "stringValue":
        c_str(x, w)
        return x
    if k == "boolValue":
        c_bool(x, w)
        return x
    if k == "intValue":
        need(is_int(x) or (isinstance(x, str) and INT_RE.match(x)),
             f"{w}: intValue must be a decimal string (or integer), got {x!r:.40}")
        need(-2**63 <= int(x) < 2**63, f"{w}: intValue out of int64 range")
        return int(x)
    if k == "doubleValue":
        need(is_int(x) or isinstance(x, float) or x in ("NaN", "Infinity", "-Infinity"),
             f"{w}: doubleValue must be a number")
        return float(x)
    if k == "bytesValue":
        need(isinstance(x, str), f"{w}: bytesValue must be a base64 string")
        return x
    need(isinstance(x, dict) and isinstance(x.get("values", []), list),
         f"{w}: {k} must be an object with a 'values' list")
    if k == "arrayValue":
        return [any_value(i, f"{w}[{n}]") for n, i in enumerate(x.get("values", []))]
    return attributes(x.get("values", []), w, lambda m: None)


def attributes(lst, w, warn):
    """OTLP KeyValue list -> dict (later duplicates win, with a warning)."""
    need(isinstance(lst, list), f"{w}: must be a list of {{key, value}}")
    out = {}
    for kv in lst:
        need(isinstance(kv, dict) and isinstance(kv.get("key"), str) and kv["key"],
             f"{w}: each attribute needs a non-empty string 'key'")
        if kv["key"] in out:
            warn(f"{w}: duplicate attribute key {kv['key']!r}")
        out[kv["key"]] = any_value(kv.get("value", {}), f"{w}.{kv['key']}")
    return out


def hex_id(v, n, w, optional=False):
    if optional and v in (None, ""):
        return ""
    need(isinstance(v, str) and HEX_RE[n].match(v) and int(v, 16) != 0,
         f"{w}: must be {n} hex characters, not all zero, got {v!r:.40}")
    return v.lower()


def nanos(v, w):
    need((is_int(v) or (isinstance(v, str) and v.isdigit())) and int(v) > 0,
         f"{w}: must be a positive integer of nanoseconds (decimal string), got {v!r:.40}")
    return int(v)


def json_attr(a, key, validate):
    """A langfuse.* attribute holding a JSON-encoded object; checked, decoded."""
    v = a.get(key)
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            raise Invalid(f"attributes.{key}: must be a JSON-encoded object") from None
    validate(v, f"attributes.{key}")
    return v


# Langfuse's OTel attribute mapping (web/src/features/otel/server/attributes.ts,
# LangfuseOtelSpanAttributes; read by packages/shared/src/server/otel/
# OtelIngestionProcessor.ts). Keys under these prefixes are metadata entries.
LANGFUSE_ATTRS = {
    "langfuse.trace.name", "user.id", "session.id", "langfuse.trace.tags",
    "langfuse.trace.public", "langfuse.trace.metadata", "langfuse.trace.input",
    "langfuse.trace.output", "langfuse.observation.type", "langfuse.observation.metadata",
    "langfuse.observation.level", "langfuse.observation.status_message",
    "langfuse.observation.input", "langfuse.observation.output",
    "langfuse.observation.completion_start_time", "langfuse.observation.model.name",
    "langfuse.observation.model.parameters", "langfuse.observation.usage_details",
    "langfuse.observation.cost_details", "langfuse.observation.prompt.name",
    "langfuse.observation.prompt.version", "langfuse.environment", "langfuse.release",
    "langfuse.version", "langfuse.internal.as_root",
    # compatibility names Langfuse still reads
    "langfuse.user.id", "langfuse.session.id", "langfuse.tags", "langfuse.metadata",
    "langfuse.prompt.name", "langfuse.prompt.version"}
METADATA_PREFIXES = ("langfuse.trace.metadata.", "langfuse.observation.metadata.", "langfuse.metadata.")


def c_tags_attr(v, w):
    """langfuse.trace.tags: a string array, a JSON-encoded one, or a comma list."""
    if isinstance(v, str) and v.strip().startswith("["):
        try:
            v = json.loads(v)
        except ValueError:
            raise Invalid(f"{w}: looks like a JSON array but is not one") from None
    if isinstance(v, str):
        v = [t.strip() for t in v.split(",")]
    need(isinstance(v, list) and all(isinstance(t, str) for t in v),
         f"{w}: must be an array of strings, got {v!r:.60}")
    return v


def c_json_object(v, w):
    need(isinstance(v, dict), f"{w}: must be a JSON-encoded object")


def check_langfuse_attrs(a, warn=lambda m: None):
    t = a.get("langfuse.observation.type")
    need(t is None or t in OTEL_OBS_TYPES,
         f"attributes.langfuse.observation.type: must be one of {', '.join(OTEL_OBS_TYPES)}, got {t!r:.40}")
    for k in ("langfuse.observation.model.name", "gen_ai.request.model", "gen_ai.response.model",
              "user.id", "session.id", "langfuse.user.id",
              "langfuse.session.id", "langfuse.observation.status_message", "langfuse.release",
              "langfuse.version", "langfuse.observation.prompt.name"):
        if a.get(k) is not None:
            c_str(a[k], f"attributes.{k}")
    if a.get("langfuse.trace.name") is not None:
        c_trace_name(a["langfuse.trace.name"], "attributes.langfuse.trace.name")
    if a.get("langfuse.trace.public") is not None:
        c_bool(a["langfuse.trace.public"], "attributes.langfuse.trace.public")
    if a.get("langfuse.observation.prompt.version") is not None:
        c_int(a["langfuse.observation.prompt.version"], "attributes.langfuse.observation.prompt.version")
    if a.get("langfuse.observation.level") is not None:
        c_level(a["langfuse.observation.level"], "attributes.langfuse.observation.level")
    if a.get("langfuse.environment") is not None:
        c_env(a["langfuse.environment"], "attributes.langfuse.environment")
    cst = a.get("langfuse.observation.completion_start_time")
    if cst is not None:  # the Langfuse SDKs send it JSON-encoded ("\"...Z\"")
        c_str(cst, "attributes.langfuse.observation.completion_start_time")
        parse_ts(cst[1:-1] if cst.startswith('"') else cst,
                 "attributes.langfuse.observation.completion_start_time")
    tags = None
    if a.get("langfuse.trace.tags") is not None:
        tags = c_tags_attr(a["langfuse.trace.tags"], "attributes.langfuse.trace.tags")
    for k, x in a.items():
        if k.startswith("gen_ai.usage.") and k.endswith("_tokens"):
            need(is_int(x) and x >= 0, f"attributes.{k}: must be a non-negative intValue, got {x!r:.40}")
        if k == "gen_ai.usage.cost":
            need(is_num(x) and x >= 0, f"attributes.{k}: must be a non-negative number")
        if k.startswith("langfuse.") and k not in LANGFUSE_ATTRS and not k.startswith(METADATA_PREFIXES):
            warn(f"attributes.{k}: not in Langfuse's attribute mapping, Langfuse ignores it")
    return {"usage_details": json_attr(a, "langfuse.observation.usage_details", _nonneg_int_map),
            "cost_details": json_attr(a, "langfuse.observation.cost_details", c_cost_details),
            "model_parameters": json_attr(a, "langfuse.observation.model.parameters", c_model_params),
            "observation_metadata": json_attr(a, "langfuse.observation.metadata", c_json_object),
            "trace_metadata": json_attr(a, "langfuse.trace.metadata", c_json_object),
            "tags": tags}


def metadata_of(a, top, prefix):
    """Langfuse's metadata: the JSON-encoded attribute, then prefix.* entries."""
    return {**(top or {}), **{k[len(prefix):]: v for k, v in a.items() if k.startswith(prefix)}}


def langfuse_view(a, status, warn=lambda m: None):
    """Roughly how Langfuse would map a span (an approximation, for asserts)."""
    g = a.get
    details = check_langfuse_attrs(a, warn)
    usage = details["usage_details"]
    if usage is None:
        usage = {k: v for k, v in (
            ("input", g("gen_ai.usage.input_tokens", g("gen_ai.usage.prompt_tokens"))),
            ("output", g("gen_ai.usage.output_tokens", g("gen_ai.usage.completion_tokens"))),
            ("total", g("gen_ai.usage.total_tokens"))) if v is not None} or None
    model = g("langfuse.observation.model.name") or g("gen_ai.response.model") or g("gen_ai.request.model")
    return {
        "type": g("langfuse.observation.type") or ("generation" if model else "span"),
        "model": model, "usage_details": usage, "cost_details": details["cost_details"],
        "model_parameters": details["model_parameters"],
        "input": g("langfuse.observation.input"), "output": g("langfuse.observation.output"),
        "level": g("langfuse.observation.level") or ("ERROR" if status.get("code") == 2 else "DEFAULT"),
        "status_message": g("langfuse.observation.status_message") or status.get("message") or None,
        "completion_start_time": g("langfuse.observation.completion_start_time"),
        "trace_name": g("langfuse.trace.name"),
        "user_id": g("langfuse.user.id") or g("user.id"),
        "session_id": g("langfuse.session.id") or g("session.id"),
        "tags": details["tags"],
        "environment": g("langfuse.environment"),
        "release": g("langfuse.release"),
        "version": g("langfuse.version"),
        "public": g("langfuse.trace.public"),
        "metadata": metadata_of(a, details["observation_metadata"], "langfuse.observation.metadata."),
        "trace_metadata": metadata_of(a, details["trace_metadata"], "langfuse.trace.metadata."),
    }


def otel_traces(spans):
    """Spans grouped into Langfuse traces: each span's trace attributes
    update its trace (later spans win, tags and metadata merge), as
    Langfuse upserts a trace from every span that carries them."""
    out = {}
    for (tid, sid), d in sorted(spans.items(), key=lambda kv: kv[1]["startTimeUnixNano"]):
        lf = d["langfuse"]
        t = out.setdefault(tid, {"spans": [], "name": None, "user_id": None, "session_id": None,
                                 "tags": [], "metadata": {}, "release": None, "version": None,
                                 "environment": None})
        t["spans"].append(sid)
        for k in ("name", "user_id", "session_id", "release", "version", "environment"):
            v = lf["trace_name"] if k == "name" else lf[k]
            if v is not None:
                t[k] = v
        t["tags"] += [x for x in lf["tags"] or [] if x not in t["tags"]]
        t["metadata"].update(lf["trace_metadata"])
    return out


def decode_span(sp, resource, scope, warn):
    need(isinstance(sp, dict), "span: must be an object")
    out = {"traceId": hex_id(sp.get("traceId"), 32, "traceId"),
           "spanId": hex_id(sp.get("spanId"), 16, "spanId"),
           "parentSpanId": hex_id(sp.get("parentSpanId"), 16, "parentSpanId", optional=True)}
    need(isinstance(sp.get("name"), str) and sp["name"], "name: must be a non-empty string")
    kind = sp.get("kind", 0)
    need(is_int(kind) and 0 <= kind <= 5, f"kind: must be an integer 0..5, got {kind!r:.20}")
    start = nanos(sp.get("startTimeUnixNano"), "startTimeUnixNano")
    end = nanos(sp.get("endTimeUnixNano"), "endTimeUnixNano")
    need(end >= start, "endTimeUnixNano: earlier than startTimeUnixNano")
    status = sp.get("status") or {}
    need(isinstance(status, dict), "status: must be an object")
    code = status.get("code", 0)
    need(code in (0, 1, 2) and is_int(code), f"status.code: must be 0, 1 or 2, got {code!r:.20}")
    need(isinstance(status.get("message", ""), str), "status.message: must be a string")
    attrs = attributes(sp.get("attributes", []), "attributes", warn)
    events = []
    for n, e in enumerate(sp.get("events") or []):
        need(isinstance(e, dict), f"events[{n}]: must be an object")
        events.append({"name": e.get("name"),
                       "timeUnixNano": nanos(e.get("timeUnixNano"), f"events[{n}].timeUnixNano"),
                       "attributes": attributes(e.get("attributes", []), f"events[{n}].attributes", warn)})
    out.update(name=sp["name"], kind=kind, startTimeUnixNano=start, endTimeUnixNano=end,
               attributes=attrs, status={"code": code, "message": status.get("message", "")},
               events=events, resource=resource, scope=scope,
               langfuse=langfuse_view(attrs, status, warn))
    return out


# ------------------------------------------------------------------ the server
class StandIn:
    """In-process Langfuse stand-in. All recorded state is plain attributes;
    read it under `self.lock` if requests may be in flight, or use snapshot()."""

    def __init__(self, public_key="pk-lf-test", secret_key="sk-lf-test",
                 host="127.0.0.1", port=0, record=None, quiet=True):
        self.public_key, self.secret_key = public_key, secret_key
        self.host, self.port, self.record, self.quiet = host, port, record, quiet
        self.lock = threading.RLock()
        self.httpd = self.thread = None
        self.reset()

    def reset(self):
        with self.lock:
            self.mode = {"mode": "ok"}
            self.fail_counter = 0
            self.events = []          # accepted legacy events, arrival order
            self.event_ids = set()
            self.duplicates = 0
            self.traces = {}          # body.id -> {type, upserts, event_ids, body}
            self.observations = {}    # body.id -> {type, upserts, event_ids, body}
            self.scores = {}          # body.id (or event id) -> same shape
            self.spans = {}           # (traceId, spanId) -> decoded span + upserts
            self.rejected = []        # format violations: {endpoint, id, type, reason, item}
            self.warnings = []        # {endpoint, id, warning}: accepted, but suspicious
            self.injected = []        # items failed on purpose by fail_half
            self.requests = {}        # path -> count
            self.request_log = []     # {method, path, headers, size, status, mode}

    def set_mode(self, mode="ok", delay_s=1.0, fail_times=None):
        need(mode in MODES, f"mode: must be one of {', '.join(MODES)}")
        need(is_num(delay_s) and delay_s >= 0, "delay_s: must be a non-negative number")
        need(fail_times is None or (is_int(fail_times) and fail_times >= 1),
             "fail_times: must be a positive integer")
        with self.lock:
            self.mode = {"mode": mode, "delay_s": delay_s, "fail_times": fail_times}
            self.fail_counter = 0
            return dict(self.mode)

    def snapshot(self):
        """Everything recorded, JSON-ready (this is what GET /__state returns)."""
        with self.lock:
            return copy.deepcopy({
                "mode": self.mode, "traces": self.traces, "observations": self.observations,
                "scores": self.scores,
                "spans": {f"{t}:{s}": v for (t, s), v in self.spans.items()},
                "otel_traces": otel_traces(self.spans),
                "events": self.events, "events_count": len(self.events),
                "duplicates": self.duplicates, "rejected": self.rejected,
                "warnings": self.warnings, "injected_failures": self.injected,
                "requests": self.requests, "request_log": self.request_log})

    # -- lifecycle
    def start(self):
        self.httpd = Server((self.host, self.port), Handler)
        self.httpd.standin = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="langfuse-standin",
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- request processing (called by Handler)
    def _take_mode(self):
        m = dict(self.mode)
        if m["mode"] != "ok" and m.get("fail_times"):
            self.mode["fail_times"] -= 1
            if self.mode["fail_times"] <= 0:
                self.mode = {"mode": "ok"}
        return m

    def _auth_ok(self, header):
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.public_key and pw == self.secret_key

    def _reject(self, endpoint, item_id, typ, reason, item):
        self.rejected.append({"endpoint": endpoint, "id": item_id, "type": typ,
                              "reason": reason, "item": item})

    def _refuse(self, endpoint, code, msg):
        """Whole-request refusal (bad header, size, encoding): recorded too."""
        self._reject(endpoint, None, "request", msg, None)
        return code, {}, {"message": msg}

    def process(self, method, path, headers, raw):
        """Answer one API request: (status, extra headers, JSON body) or None
        to drop the connection."""
        endpoint = "ingestion" if path == INGEST_PATH else "otel"
        with self.lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            entry = {"method": method, "path": path, "size": None if raw is None else len(raw),
                     "headers": {k: v for k, v in headers.items() if k.lower() != "authorization"},
                     "status": None, "mode": self.mode["mode"]}
            self.request_log.append(entry)
            if method != "POST":
                entry["status"] = 405
                return 405, {"Allow": "POST"}, {"message": "Method not allowed"}
            mode = self._take_mode()
            entry["mode"] = mode["mode"]
        if mode["mode"] == "slow":
            time.sleep(mode.get("delay_s", 1.0))
        result = self._answer(mode["mode"], endpoint, headers, raw)
        with self.lock:
            entry["status"] = result[0] if result else "closed"
        return result

    def _answer(self, mode, endpoint, headers, raw):
        if mode == "down":
            return None
        if mode == "error500":
            return 500, {}, {"message": "Internal Server Error"}
        if mode == "rate_limit":
            return 429, {"Retry-After": "1"}, {"message": "Rate limit exceeded"}
        if not self._auth_ok(headers.get("Authorization")):
            return 401, {}, {"message": "Invalid credentials. Confirm that you've configured "
                                        "the correct host and API keys (Basic pk-lf:sk-lf)."}
        with self.lock:
            if endpoint == "otel" and headers.get("x-langfuse-ingestion-version") != "4":
                return self._refuse(endpoint, 400, "x-langfuse-ingestion-version header must be '4', got "
                                 f"{headers.get('x-langfuse-ingestion-version')!r}")
            ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return self._refuse(endpoint, 415, f"Content-Type must be application/json (OTLP/JSON only), got {ctype!r}")
            if raw is None or len(raw) > MAX_BODY:
                return self._refuse(endpoint, 413, f"request body larger than {MAX_BODY} bytes")
            enc = (headers.get("Content-Encoding") or "identity").strip().lower()
            if enc == "gzip":
                try:
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    raw = d.decompress(raw, MAX_BODY + 1)
                except zlib.error as e:
                    return self._refuse(endpoint, 400, f"bad gzip body: {e}")
                if len(raw) > MAX_BODY:
                    return self._refuse(endpoint, 413, f"decompressed body larger than {MAX_BODY} bytes")
                if not d.eof:
                    return self._refuse(endpoint, 400, "bad gzip body: truncated stream")
            elif enc != "identity":
                return self._refuse(endpoint, 415, f"unsupported Content-Encoding {enc!r}")
            try:
                obj = json.loads(raw)
            except ValueError as e:
                self._reject(endpoint, None, "request", f"body is not valid JSON: {e}", None)
                return 400, {}, {"message": "Invalid request data", "errors": [f"body is not valid JSON: {e}"]}
            if endpoint == "ingestion":
                if len(raw) > DOC_BATCH_LIMIT:
                    self.warnings.append({"endpoint": endpoint, "id": None,
                                          "warning": f"batch of {len(raw)} bytes exceeds the documented 3.5 MB"})
                return self._ingest(obj, mode == "fail_half")
            return self._otel(obj, mode == "fail_half")

    def _fail_half(self, failing):
        """True for every second valid item while fail_half is on."""
        if not failing:
            return False
        self.fail_counter += 1
        return self.fail_counter % 2 == 0

    def _ingest(self, obj, failing):
        if not (isinstance(obj, dict) and isinstance(obj.get("batch"), list)):
            msg = "body must be an object with a 'batch' array"
            self._reject("ingestion", None, "request", msg, None)
            return 400, {}, {"message": "Invalid request data", "errors": [msg]}
        successes, errors = [], []
        for ev in obj["batch"]:
            eid = ev.get("id") if isinstance(ev, dict) and isinstance(ev.get("id"), str) else None
            typ = ev.get("type") if isinstance(ev, dict) else None
            warn = lambda m: self.warnings.append({"endpoint": "ingestion", "id": eid, "warning": m})
            try:
                validate_event(ev, warn)
            except Invalid as e:
                self._reject("ingestion", eid, typ, str(e), ev)
                errors.append({"id": eid or "unknown", "status": 400,
                               "message": "Invalid request data", "error": str(e)})
                continue
            if self._fail_half(failing):
                self.injected.append({"endpoint": "ingestion", "id": eid})
                errors.append({"id": eid, "status": 500, "message": "temporary",
                               "error": "stand-in fail_half"})
                continue
            successes.append({"id": eid, "status": 201})
            if eid in self.event_ids:
                self.duplicates += 1
                continue
            self.event_ids.add(eid)
            self.events.append(ev)
            self._upsert_legacy(ev)
        return 207, {}, {"successes": successes, "errors": errors}

    def _upsert_legacy(self, ev):
        kind = EVENT_TYPES[ev["type"]][2]
        if kind is None:
            return
        body = ev["body"]
        table = {"trace": self.traces, "score": self.scores}.get(kind, self.observations)
        key = body.get("id") or ev["id"]
        rec = table.setdefault(key, {"type": kind, "upserts": 0, "event_ids": [], "body": {}})
        rec["upserts"] += 1
        rec["event_ids"].append(ev["id"])
        merged = rec["body"]
        for k, v in body.items():
            if v is None:
                continue  # Langfuse does not erase fields on null
            if k == "metadata" and isinstance(v, dict) and isinstance(merged.get(k), dict):
                merged[k] = {**merged[k], **v}
            elif k == "tags" and isinstance(merged.get(k), list):
                merged[k] = merged[k] + [t for t in v if t not in merged[k]]
            else:
                merged[k] = v

    def _otel(self, obj, failing):
        rs_list = obj.get("resourceSpans", []) if isinstance(obj, dict) else None
        if not isinstance(rs_list, list):
            msg = "body must be an ExportTraceServiceRequest object with a 'resourceSpans' list"
            self._reject("otel", None, "request", msg, None)
            return 400, {}, {"message": msg}
        batches = []  # (resource attributes, scope, spans): check the frame before recording anything
        warn = lambda m: self.warnings.append({"endpoint": "otel", "id": None, "warning": m})
        try:
            for rs in rs_list:
                need(isinstance(rs, dict), "resourceSpans[]: must be an object")
                res = rs.get("resource") or {}
                need(isinstance(res, dict), "resource: must be an object")
                resource = attributes(res.get("attributes", []), "resource.attributes", warn)
                need(isinstance(rs.get("scopeSpans", []), list), "scopeSpans: must be a list")
                for ss in rs.get("scopeSpans", []):
                    need(isinstance(ss, dict) and isinstance(ss.get("spans", []), list),
                         "scopeSpans[]: must be an object with a 'spans' list")
                    sc = ss.get("scope") or {}
                    need(isinstance(sc, dict), "scope: must be an object")
                    batches.append((resource, {"name": sc.get("name"), "version": sc.get("version")},
                                    ss.get("spans", [])))
        except Invalid as e:
            self._reject("otel", None, "request", str(e), None)
            return 400, {}, {"message": f"Invalid request data: {e}"}
        rejected, messages = 0, []
        for resource, scope, spans in batches:
            for sp in spans:
                sid = (f"{sp.get('traceId')}:{sp.get('spanId')}" if isinstance(sp, dict) else None)
                warn = lambda m: self.warnings.append({"endpoint": "otel", "id": sid, "warning": m})
                try:
                    d = decode_span(sp, resource, scope, warn)
                except Invalid as e:
                    self._reject("otel", sid, "span", str(e), sp)
                    rejected += 1
                    messages.append(f"span {sid}: {e}")
                    continue
                if self._fail_half(failing):
                    self.injected.append({"endpoint": "otel", "id": sid})
                    rejected += 1
                    messages.append(f"span {sid}: temporary failure (stand-in fail_half)")
                    continue
                key = (d["traceId"], d["spanId"])
                old = self.spans.get(key)
                if old:
                    d["attributes"] = {**old["attributes"], **d["attributes"]}
                    d["langfuse"] = langfuse_view(d["attributes"], d["status"])
                d["upserts"] = (old["upserts"] if old else 0) + 1
                self.spans[key] = d
        if rejected:
            return 200, {}, {"partialSuccess": {"rejectedSpans": rejected,
                                                "errorMessage": "; ".join(messages)[:2000]}}
        return 200, {}, {}

    # -- control endpoints (no auth)
    def control(self, method, path, raw):
        if path == "/__state" and method == "GET":
            return 200, self.snapshot()
        if path == "/__reset" and method == "POST":
            self.reset()
            return 200, {"ok": True}
        if path == "/__mode" and method == "POST":
            try:
                opts = json.loads(raw or b"{}")
                need(isinstance(opts, dict), "body must be a JSON object")
                unknown = set(opts) - {"mode", "delay_s", "fail_times"}
                need(not unknown, f"unknown options {sorted(unknown)}")
                return 200, {"ok": True, "mode": self.set_mode(**opts)}
            except (ValueError, Invalid) as e:
                return 400, {"message": str(e)}
        return 404, {"message": f"no control endpoint {method} {path}"}

    def log_record(self, line):
        if self.record:
            with self.lock, open(self.record, "a", encoding="utf-8") as f:
                f.write(json.dumps(line, default=str) + "\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True        # a "slow" request must not hold up stop()
    block_on_close = False
    request_queue_size = 128     # bursts of exporter connections, not 5


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "langfuse-standin/1"
    timeout = 60

    def log_message(self, fmt, *args):
        if not self.server.standin.quiet:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        """Body bytes, or None if it is beyond HARD_CAP (then we close)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > HARD_CAP:
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return None if n > HARD_CAP else self.rfile.read(n)

    def _send(self, status, body, extra=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        si = self.server.standin
        path = self.path.split("?", 1)[0]
        try:
            raw = self._read_body()
        except ValueError:
            self.close_connection = True
            return self._send(400, {"message": "bad Content-Length or chunked encoding"})
        if raw is None:
            self.close_connection = True
        if path.startswith("/__"):
            status, body = si.control(self.command, path, raw)
            return self._send(status, body)
        if path not in (INGEST_PATH, OTEL_PATH):
            return self._send(404, {"message": f"not found: {path}"})
        result = si.process(self.command, path, self.headers, raw)
        if si.record:
            try:
                req = json.loads(raw) if raw and not self.headers.get("Content-Encoding") else None
            except ValueError:
                req = None
            si.log_record({"t": time.time(), "method": self.command, "path": path,
                           "status": result[0] if result else "closed",
                           "request": req, "response": result[2] if result else None})
        if result is None:  # mode "down": hang up without a word
            self.close_connection = True
            return
        self._send(result[0], result[2], result[1])

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--public-key", default="pk-lf-test")
    ap.add_argument("--secret-key", default="sk-lf-test")
    ap.add_argument("--record", help="append one JSON line per API request, and the final state on exit")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)
    si = StandIn(args.public_key, args.secret_key, port=args.port, record=args.record,
                 quiet=not args.verbose).start()
    if args.port_file:
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{si.port}\n")
        os.replace(tmp, args.port_file)
    # Handlers first: a SIGTERM right after "listening" must stop it cleanly.
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"listening 127.0.0.1:{si.port}", flush=True)
    while not done.wait(0.5):
        pass
    si.stop()
    si.log_record({"final_state": si.snapshot()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
