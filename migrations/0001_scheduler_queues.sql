-- tapesched scheduler queues (PostgreSQL backend), schema version 1.
--
-- Every object lives in the schema the backend was opened on (search_path); nothing here names a
-- schema. Times are the caller's clock (epoch seconds), never now(). Names sort byte-wise
-- (COLLATE "C") so listings match the canonical order of the other backends. u64 values are
-- stored bit-cast in bigint by the application.
--
-- Codes:
--   queue kind (queue_summary.kind): 0 ArchiveForUser (per tape pool), 1 ArchiveForRepack, 2 Retrieve (per VID)
--   archive_job.status:      0 ToTransfer, 1 ToReportForTransfer, 2 ToReportForFailure, 3 Complete, 4 Failed
--   retrieve_request.status: 0 ToTransfer, 1 ToReportForTransfer, 2 ToReportForFailure, 3 Failed
--
-- A job is "queued" when queue_seq is set (its position in its transfer queue), "held" by a mount
-- when mount_id is set (owned_op, owned_rank: the order in which the mount took it), and neither
-- once it is waiting for a report, failed or complete.

-- Merges two value->count maps (jsonb objects of integer counts); entries that drop to zero or
-- below disappear.
CREATE FUNCTION merge_counts(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
    FROM (
        SELECT k, sum(v) AS n
        FROM (
            SELECT key AS k, value::bigint AS v FROM jsonb_each_text(coalesce(a, '{}'::jsonb))
            UNION ALL
            SELECT key, value::bigint FROM jsonb_each_text(coalesce(b, '{}'::jsonb))
        ) AS both_maps
        GROUP BY k
        HAVING sum(v) > 0
    ) AS merged
$$;

-- Arrival order in transfer queues (global, so FIFO per queue follows it).
CREATE SEQUENCE queue_seq;
-- Operation order: which claim (pop or claim-by-id) gave a job to its mount.
CREATE SEQUENCE op_seq;
-- Mount ids (the objectstore counts from 1 too).
CREATE SEQUENCE mount_id_seq START 1;
-- Registration order of mounts (the collector visits dead mounts in that order).
CREATE SEQUENCE mount_reg_seq;

CREATE TABLE mount (
    mount_id        bigint PRIMARY KEY,
    reg_seq         bigint NOT NULL DEFAULT nextval('mount_reg_seq'),
    mount_type      text NOT NULL,
    vid             text COLLATE "C" NOT NULL,
    tape_pool       text COLLATE "C" NOT NULL,
    vo              text NOT NULL,
    drive           text NOT NULL,
    logical_library text NOT NULL,
    created_at      bigint NOT NULL,
    heartbeat       bigint NOT NULL,
    abandoned       boolean NOT NULL DEFAULT false
);
CREATE INDEX mount_reg ON mount (reg_seq);

CREATE TABLE archive_request (
    archive_file_id  bigint PRIMARY KEY,
    disk_instance    text NOT NULL,
    disk_file_id     text NOT NULL,
    requester_name   text NOT NULL,
    requester_group  text NOT NULL,
    storage_class    text NOT NULL,
    size             bigint NOT NULL,
    created_at       bigint NOT NULL,
    report_url       text,
    error_report_url text,
    policy_name      text NOT NULL,
    priority         bigint NOT NULL,
    min_request_age  bigint NOT NULL,
    report_decided   boolean NOT NULL DEFAULT false,
    copies           integer NOT NULL
);

-- One row per copy to write. size and created_at are copied from the request: the claim's
-- cumulative byte budget and the oldest/youngest recomputation read this table alone.
CREATE TABLE archive_job (
    archive_file_id         bigint NOT NULL,
    copy_nb                 integer NOT NULL,
    position                integer NOT NULL,
    tape_pool               text COLLATE "C" NOT NULL,
    status                  smallint NOT NULL,
    size                    bigint NOT NULL,
    created_at              bigint NOT NULL,
    queue_seq               bigint,
    mount_id                bigint,
    owned_op                bigint,
    owned_rank              integer,
    times_claimed           integer NOT NULL DEFAULT 0,
    retries_within_mount    integer NOT NULL DEFAULT 0,
    total_retries           integer NOT NULL DEFAULT 0,
    last_mount_with_failure bigint,
    report_retries          integer NOT NULL DEFAULT 0,
    failure_reasons         text[] NOT NULL DEFAULT '{}',
    written_copy_nb         integer,
    written_vid             text,
    written_fseq            bigint,
    written_block_id        bigint,
    PRIMARY KEY (archive_file_id, copy_nb),
    CHECK (queue_seq IS NULL OR mount_id IS NULL),
    CHECK (queue_seq IS NULL OR status = 0)
) WITH (fillfactor = 90);
-- The claim: filter by pool, FIFO order.
CREATE INDEX archive_job_queue ON archive_job (tape_pool, queue_seq) WHERE queue_seq IS NOT NULL;
-- Oldest/youngest of a queue after removals (index-backed MIN/MAX).
CREATE INDEX archive_job_queue_age ON archive_job (tape_pool, created_at) WHERE queue_seq IS NOT NULL;
-- What a mount holds, in the order it took it (end of mount, dead-mount collection).
CREATE INDEX archive_job_mount ON archive_job (mount_id, owned_op, owned_rank) WHERE mount_id IS NOT NULL;
-- Reports due and failed lists.
CREATE INDEX archive_job_report ON archive_job (archive_file_id) WHERE status IN (1, 2);
CREATE INDEX archive_job_failed ON archive_job (archive_file_id) WHERE status = 4;

-- One row per retrieve request; its tape copies are parallel arrays (same order as the request's
-- copies), with per-copy retry counters. active_* describe the copy on the VID whose queue holds it.
CREATE TABLE retrieve_request (
    request_id              bigint PRIMARY KEY,
    archive_file_id         bigint NOT NULL,
    disk_instance           text NOT NULL,
    requester_name          text NOT NULL,
    requester_group         text NOT NULL,
    size                    bigint NOT NULL,
    dst_url                 text NOT NULL,
    report_url              text,
    error_report_url        text,
    created_at              bigint NOT NULL,
    activity                text,
    verify_only             boolean NOT NULL,
    disk_system             text,
    policy_name             text NOT NULL,
    priority                bigint NOT NULL,
    min_request_age         bigint NOT NULL,
    copy_nbs                integer[] NOT NULL,
    vids                    text[] NOT NULL,
    fseqs                   bigint[] NOT NULL,
    block_ids               bigint[] NOT NULL,
    retries_within_mount    integer[] NOT NULL,
    total_retries           integer[] NOT NULL,
    last_mount_with_failure bigint[] NOT NULL,
    report_retries          integer[] NOT NULL,
    active_vid              text COLLATE "C" NOT NULL,
    active_copy_nb          integer NOT NULL,
    active_fseq             bigint NOT NULL,
    status                  smallint NOT NULL,
    failure_reasons         text[] NOT NULL DEFAULT '{}',
    queue_seq               bigint,
    mount_id                bigint,
    owned_op                bigint,
    owned_rank              integer,
    times_claimed           integer NOT NULL DEFAULT 0,
    CHECK (queue_seq IS NULL OR mount_id IS NULL),
    CHECK (queue_seq IS NULL OR status = 0)
) WITH (fillfactor = 90);
-- The claim: filter by VID, order by fSeq then arrival.
CREATE INDEX retrieve_queue ON retrieve_request (active_vid, active_fseq, queue_seq) WHERE queue_seq IS NOT NULL;
CREATE INDEX retrieve_queue_age ON retrieve_request (active_vid, created_at) WHERE queue_seq IS NOT NULL;
CREATE INDEX retrieve_mount ON retrieve_request (mount_id, owned_op, owned_rank) WHERE mount_id IS NOT NULL;
CREATE INDEX retrieve_file ON retrieve_request (archive_file_id) WHERE queue_seq IS NOT NULL;
CREATE INDEX retrieve_report ON retrieve_request (archive_file_id) WHERE status IN (1, 2);
CREATE INDEX retrieve_failed ON retrieve_request (archive_file_id) WHERE status = 3;

-- Per transfer queue summary, maintained in the same transactions that change the jobs:
-- totals, value->count maps (priority, minimum age, policy name), oldest/youngest creation time
-- (recomputed with the *_queue_age indexes after removals), and the retrieve queue's markers
-- (cleanup flag, sleep for a full disk system). Mount decisions read this table only.
CREATE TABLE queue_summary (
    kind              smallint NOT NULL,
    container         text COLLATE "C" NOT NULL,
    files             bigint NOT NULL DEFAULT 0,
    bytes             bigint NOT NULL DEFAULT 0,
    priorities        jsonb NOT NULL DEFAULT '{}',
    min_ages          jsonb NOT NULL DEFAULT '{}',
    policies          jsonb NOT NULL DEFAULT '{}',
    oldest            bigint,
    youngest          bigint,
    cleanup           boolean NOT NULL DEFAULT false,
    sleep_disk_system text,
    sleep_until       bigint,
    PRIMARY KEY (kind, container)
);
CREATE INDEX queue_summary_cleanup ON queue_summary (container) WHERE cleanup;
