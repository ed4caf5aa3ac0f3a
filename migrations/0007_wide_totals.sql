-- tapesched scheduler queues and catalogue, schema version 7: totals that never wrap.
--
-- Every size is at most 2^63-1 (the scheduler core refuses larger values before any backend sees
-- them), but a queue's total of bytes may pass it: a bigint sum failed with "bigint out of range".
-- The total is kept exact in numeric, so adding and removing jobs stays exact whatever the sizes,
-- and readers show it as least(bytes, 2^63-1), as every backend does.
ALTER TABLE queue_summary ALTER COLUMN bytes TYPE numeric;

-- The next archive file id to assign is 2^63 once 2^63-1 was handed out (no id is left then): it
-- does not fit in a bigint.
ALTER TABLE cat_meta ALTER COLUMN next_archive_file_id TYPE numeric;
