-- tapesched schema version 12: why a drive is Down.
--
-- A tape daemon that puts a drive Down (a drive error, a stuck cartridge, a library that cannot
-- load it) records its reason with the status in the drive register, where operators read it;
-- NULL when the drive is not Down or no reason was given (DriveState::reason).

ALTER TABLE cat_drive ADD COLUMN reason text;
