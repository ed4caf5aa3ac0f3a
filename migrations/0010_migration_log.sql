-- tapesched schema version 10: the migration bridge's counters and divergences, shared.
--
-- Every process that runs the migration bridge (crates/bridge) flushes what its divergence log
-- counted and recorded since its previous flush (tapesched_migrate::LogFlusher, about once a
-- second) in one transaction: one migration_counters row per operation kind that changed in that
-- window, one migration_divergence row per divergence, and one migration_log_batch row naming the
-- flush, so that a flush retried after an unknown commit outcome is written once. `tapesched
-- migrate status` adds the counters up over every process (in total, and for the gate's window),
-- the gate of `live` reads the mismatch rate of the last window, and `tapesched migrate repair`
-- repairs the items the unrepaired divergences name, then sets repaired_at.
--
-- Times: recorded_at, window_start and window_end are the wall clock of the recording process
-- (epoch seconds; operators' records, not scheduling input); at is the caller's "now" of the
-- operation that diverged. Latencies are histograms (jsonb: count, total_micros, max_micros and
-- log-scale buckets, tapesched_bridge::Histogram) that add up bucket by bucket.
--
-- The gate's settings live on the stage row: the highest mismatch rate (mismatched / compared,
-- ignored comparisons left out) allowed over the last gate_window seconds before `live`.

CREATE TABLE migration_log_batch (
    process    text NOT NULL,
    batch      bigint NOT NULL,
    written_at bigint NOT NULL,
    PRIMARY KEY (process, batch)
);

CREATE TABLE migration_counters (
    seq           bigserial PRIMARY KEY,
    process       text NOT NULL,
    window_start  bigint NOT NULL,
    window_end    bigint NOT NULL,
    op            text NOT NULL,
    calls         bigint NOT NULL,
    compared      bigint NOT NULL,
    matched       bigint NOT NULL,
    mismatched    bigint NOT NULL,
    ignored       jsonb NOT NULL DEFAULT '{}',
    legacy_errors bigint NOT NULL,
    target_errors bigint NOT NULL,
    legacy_latency jsonb NOT NULL,
    target_latency jsonb NOT NULL,
    dropped       bigint NOT NULL DEFAULT 0
);

CREATE INDEX migration_counters_window_end ON migration_counters (window_end);

CREATE TABLE migration_divergence (
    seq         bigserial PRIMARY KEY,
    process     text NOT NULL,
    process_seq bigint NOT NULL,
    recorded_at bigint NOT NULL,
    at          bigint NOT NULL,
    op          text NOT NULL,
    stage       text NOT NULL,
    concerns    jsonb NOT NULL,
    legacy      jsonb NOT NULL,
    target      jsonb NOT NULL,
    note        text,
    ignored_by  text,
    repaired_at bigint,
    repair_note text
);

CREATE INDEX migration_divergence_unrepaired ON migration_divergence (seq)
    WHERE repaired_at IS NULL AND ignored_by IS NULL;
CREATE INDEX migration_divergence_recorded_at ON migration_divergence (recorded_at);

ALTER TABLE migration_stage
    ADD COLUMN max_mismatch_rate double precision NOT NULL DEFAULT 0
        CHECK (max_mismatch_rate >= 0 AND max_mismatch_rate <= 1),
    ADD COLUMN gate_window bigint NOT NULL DEFAULT 600 CHECK (gate_window > 0);
