-- tapesched scheduler queues, schema version 4: what a mount holds, recorded per claim.
--
-- Version 1 indexed archive_job and retrieve_request by mount_id, so every claimed job cost an
-- entry in that index on top of the one its primary key takes (a claim cannot be a HOT update:
-- it takes the job out of the queue index). A mount's holdings are read only when it ends or dies,
-- so each claim now records the ids it took in one row here instead: one row per claim, not one
-- index entry per job.
--
-- The lists are a superset of what the mount holds: a job that later leaves the mount (reported,
-- requeued, claimed again by another mount) stays listed, so readers keep only the jobs whose
-- row still says `mount_id = <mount> AND owned_op = <op>`. Rows go with their mount.

CREATE TABLE mount_claim (
    mount_id       bigint NOT NULL REFERENCES mount (mount_id) ON DELETE CASCADE,
    op             bigint NOT NULL,
    archive_ids    bigint[] NOT NULL DEFAULT '{}',
    archive_copies integer[] NOT NULL DEFAULT '{}',
    retrieve_ids   bigint[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (mount_id, op),
    CHECK (cardinality(archive_ids) = cardinality(archive_copies))
);

-- What mounts already hold when the schema is upgraded.
INSERT INTO mount_claim (mount_id, op, archive_ids, archive_copies)
SELECT mount_id, coalesce(owned_op, 0), array_agg(archive_file_id), array_agg(copy_nb)
FROM archive_job WHERE mount_id IN (SELECT mount_id FROM mount)
GROUP BY mount_id, coalesce(owned_op, 0);

INSERT INTO mount_claim (mount_id, op, retrieve_ids)
SELECT mount_id, coalesce(owned_op, 0), array_agg(request_id)
FROM retrieve_request WHERE mount_id IN (SELECT mount_id FROM mount)
GROUP BY mount_id, coalesce(owned_op, 0)
ON CONFLICT (mount_id, op) DO UPDATE SET retrieve_ids = excluded.retrieve_ids;

DROP INDEX archive_job_mount;
DROP INDEX retrieve_mount;
