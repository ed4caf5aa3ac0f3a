-- tapesched scheduler queues, schema version 5: mount_claim lists stored uncompressed.
--
-- A claim of 4000 archive jobs records 48 kB of ids. PostgreSQL compresses a value that large
-- before moving it out of line, and ids in claim order compress poorly: the compression cost more
-- than the rest of the row's insert. The lists are kept out of line, uncompressed.

ALTER TABLE mount_claim
    ALTER COLUMN archive_ids SET STORAGE EXTERNAL,
    ALTER COLUMN archive_copies SET STORAGE EXTERNAL,
    ALTER COLUMN retrieve_ids SET STORAGE EXTERNAL;
