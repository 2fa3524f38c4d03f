-- 009_langfuse_traces: what Langfuse files a request under (issue 21).
-- request_payloads.trace holds the request's LiteLLM-style Langfuse keys
-- (trace and span ids, names, user, session, version, release, the
-- client's trace_metadata, model parameters) as lib/capture.c checked and
-- bounded them; spend_logs.session_id keeps metadata.session_id for
-- reports, beside request_tags.

ALTER TABLE request_payloads ADD COLUMN trace jsonb NOT NULL DEFAULT '{}';
ALTER TABLE spend_logs ADD COLUMN session_id text;
CREATE INDEX spend_logs_session_idx ON spend_logs (session_id, start_time)
    WHERE session_id IS NOT NULL;
