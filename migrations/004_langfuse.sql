-- 004_langfuse: request inputs and outputs kept for the Langfuse exporter,
-- beside their spend_logs rows (same request_id), when [langfuse] export is
-- on. bin/llmgw-langfuse-export marks rows exported once Langfuse accepted
-- them and prunes exported rows after [langfuse] retention_days.

CREATE TABLE request_payloads (
    request_id   text PRIMARY KEY,
    record_mode  text NOT NULL CHECK (record_mode IN ('full', 'redacted', 'none')),
    input        jsonb,
    output       jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    exported_at  timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    -- Legacy ingestion: the events of this request Langfuse accepted
    -- already ('trace', 'generation'), so a retry sends only the others.
    accepted_events text[] NOT NULL DEFAULT '{}'
);
-- The exporter's queue: what is not exported yet, oldest first.
CREATE INDEX request_payloads_pending_idx ON request_payloads (created_at)
    WHERE exported_at IS NULL;
CREATE INDEX request_payloads_exported_idx ON request_payloads (exported_at)
    WHERE exported_at IS NOT NULL;
