-- tapesched schema version 9: the record of a migration between scheduler backends.
--
-- The stage of a migration from a legacy backend to this database (crates/migrate, `tapesched
-- migrate`) lives in the target database, shared by every process: one row in migration_stage
-- (none until `tapesched migrate init`), every change in migration_stage_history (who, when, why,
-- whether forced). migration_verify records each verify run (its differences), since advancing to
-- `live` needs a clean one. migration_checkpoint holds the last key a backfill copied, so that a
-- backfill stopped halfway resumes after it. Times are the wall clock of the operator's command
-- (epoch seconds): these are operators' records, not scheduling input.

CREATE TABLE migration_stage (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    stage      text NOT NULL CHECK (stage IN ('off', 'dual-write', 'shadow', 'live', 'rampdown', 'complete')),
    changed_at bigint NOT NULL
);

CREATE TABLE migration_stage_history (
    seq        bigserial PRIMARY KEY,
    stage      text NOT NULL,
    previous   text,
    who        text NOT NULL,
    at         bigint NOT NULL,
    reason     text NOT NULL,
    forced     boolean NOT NULL DEFAULT false
);

CREATE TABLE migration_verify (
    seq         bigserial PRIMARY KEY,
    at          bigint NOT NULL,
    items       bigint NOT NULL,
    differences bigint NOT NULL,
    summary     text NOT NULL
);

CREATE TABLE migration_checkpoint (
    name      text PRIMARY KEY,
    last_key  jsonb,
    items     bigint NOT NULL DEFAULT 0,
    jobs      bigint NOT NULL DEFAULT 0,
    done      boolean NOT NULL DEFAULT false,
    updated   bigint NOT NULL
);
