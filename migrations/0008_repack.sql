-- tapesched scheduler queues and catalogue, schema version 8: repack.
--
-- Repack requests. One row per tape (the VID is the request's identity: a second repack of the
-- same tape is refused by the primary key). The request is read and written whole by the
-- scheduler core (`RepackUpdate::apply` runs in Rust on the row read FOR UPDATE), and there are a
-- few of them at a time, so its value is kept as jsonb; `seq` and `status` are columns for
-- listings and operators' queries.
CREATE TABLE repack_request (
    vid    text COLLATE "C" PRIMARY KEY,
    seq    bigint NOT NULL,
    status text NOT NULL,
    value  jsonb NOT NULL
);

-- Repack subrequests are ordinary requests carrying their `RepackLink` (jsonb, `repack`) and the
-- repacked tape (`repack_vid`, a column so that cancelling a repack finds its subrequests by
-- index). Every rule and every mount path treats them as other requests; only reports differ:
-- their outcome goes to their repack, never to the disk side nor to the failed lists.
--
-- Retrieve subrequests are keyed by their request id (the subrequest id) as any retrieve and
-- queue in the ordinary per-VID retrieve queues.
ALTER TABLE retrieve_request ADD COLUMN repack jsonb, ADD COLUMN repack_vid text COLLATE "C";
ALTER TABLE retrieve_request ADD CHECK ((repack IS NULL) = (repack_vid IS NULL));

-- A repack's archive request is keyed by its subrequest id, not by its archive file id: two
-- repacks may re-archive the same file at once. Rather than widening the key of archive_request
-- and archive_job (and every index, claim record and statement that uses it), the key column
-- `archive_file_id` holds -(subrequest_id + 1) for a repack's archive (always negative; a user's
-- archive file id is never negative: ids are at most 2^63-1), and the real archive file id is in
-- `file_id`. Seen as u64 (the application bit-casts), the key is u64::MAX - subrequest_id, so a
-- key at or above 2^63 is a repack's. Listings and reports read `file_id` for those rows.
ALTER TABLE archive_request
    ADD COLUMN file_id bigint,
    ADD COLUMN repack jsonb,
    ADD COLUMN repack_vid text COLLATE "C";
ALTER TABLE archive_request ADD CHECK (
    (archive_file_id < 0) = (repack IS NOT NULL) AND (repack IS NULL) = (repack_vid IS NULL)
    AND (repack IS NULL) = (file_id IS NULL)
);

-- Repack archive jobs form ArchiveForRepack queues (queue kind 1, per tape pool): the queue and
-- queue-age indexes are split by the sign of the key, so a claim of one kind never walks the
-- other kind's entries of the same pool.
DROP INDEX archive_job_queue;
DROP INDEX archive_job_queue_age;
CREATE INDEX archive_job_queue ON archive_job (tape_pool, queue_seq)
    WHERE queue_seq IS NOT NULL AND archive_file_id >= 0;
CREATE INDEX archive_job_queue_age ON archive_job (tape_pool, created_at)
    WHERE queue_seq IS NOT NULL AND archive_file_id >= 0;
CREATE INDEX archive_job_repack_queue ON archive_job (tape_pool, queue_seq)
    WHERE queue_seq IS NOT NULL AND archive_file_id < 0;
CREATE INDEX archive_job_repack_queue_age ON archive_job (tape_pool, created_at)
    WHERE queue_seq IS NOT NULL AND archive_file_id < 0;

-- Reports: user reports and failed lists never see repack subrequests; repack reports have
-- their own indexes.
DROP INDEX archive_job_report;
DROP INDEX archive_job_failed;
CREATE INDEX archive_job_report ON archive_job (archive_file_id) WHERE status IN (1, 2) AND archive_file_id >= 0;
CREATE INDEX archive_job_failed ON archive_job (archive_file_id) WHERE status = 4 AND archive_file_id >= 0;
CREATE INDEX archive_job_repack_report ON archive_job (archive_file_id) WHERE status IN (1, 2) AND archive_file_id < 0;

DROP INDEX retrieve_report;
DROP INDEX retrieve_failed;
CREATE INDEX retrieve_report ON retrieve_request (archive_file_id) WHERE status IN (1, 2) AND repack_vid IS NULL;
CREATE INDEX retrieve_failed ON retrieve_request (archive_file_id) WHERE status = 3 AND repack_vid IS NULL;
CREATE INDEX retrieve_repack_report ON retrieve_request (archive_file_id, request_id)
    WHERE status IN (1, 2) AND repack_vid IS NOT NULL;

-- Cancelling a repack: its subrequests by tape.
CREATE INDEX retrieve_repack ON retrieve_request (repack_vid) WHERE repack_vid IS NOT NULL;
CREATE INDEX archive_request_repack ON archive_request (repack_vid) WHERE repack_vid IS NOT NULL;

-- Catalogue: a tape's files in fSeq order (repack expansion reads a tape a pass at a time).
CREATE INDEX cat_tape_file_vid ON cat_tape_file (vid, fseq);
