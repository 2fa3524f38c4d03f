-- 012_spend_response_bloom: response_id is found through a BRIN bloom
-- index instead of a hash index (issue 19: PostgreSQL CPU per spend row).
-- The hash index took an entry per shipped row in a bucket page picked at
-- random (~13% of the shipping backend's CPU, 95 of ~600 WAL bytes a
-- row). A BRIN index has nothing to do while rows fill the last block
-- range; a range is summarized (a bloom filter of its response ids) once
-- it is full (autosummarize: an autovacuum work item) or by VACUUM.
--
-- The price is on lookups (GET /spend/logs?request_id=, which matches
-- request_id or response_id): they read every range's filter and the
-- pages of the ranges that may hold the id (1 in 1,000 by chance), plus
-- the ranges not summarized yet: about 2-8 ms per million rows here,
-- where the hash index took 0.1 ms. A list by key, user, date or session
-- is not affected.
--
-- 32 pages a range hold about 1,100 rows of ~240 bytes; 1,500 distinct
-- ids a range keeps the filter at its false-positive rate for rows down
-- to ~170 bytes (2.7 kB of filter a range).
DROP INDEX spend_logs_response_idx;
CREATE INDEX spend_logs_response_idx ON spend_logs
    USING brin (response_id text_bloom_ops (n_distinct_per_range = 1500,
        false_positive_rate = 0.001))
    WITH (pages_per_range = 32, autosummarize = on);
