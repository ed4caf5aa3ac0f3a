-- tapesched shared catalogue (PostgreSQL), schema version 2.
--
-- The catalogue's read side is CatalogueSnapshot: these tables hold it, plus archive files and
-- tape files. Validation is the application's (CatalogueSnapshot::apply / validate), so there are
-- no foreign keys here: every write happens in a transaction that first locks cat_meta, checks
-- the edit against the snapshot and then writes the rows that changed, bumping cat_meta.version
-- (readers cache the snapshot per version). u64 values are stored bit-cast in bigint.

CREATE TABLE cat_meta (
    id                   boolean PRIMARY KEY DEFAULT true CHECK (id),
    version              bigint NOT NULL,
    next_archive_file_id bigint NOT NULL
);
INSERT INTO cat_meta (id, version, next_archive_file_id) VALUES (true, 0, 1);

CREATE SEQUENCE cat_request_id_seq START 1;

CREATE TABLE cat_disk_instance (name text COLLATE "C" PRIMARY KEY);

CREATE TABLE cat_vo (
    name             text COLLATE "C" PRIMARY KEY,
    read_max_drives  bigint NOT NULL,
    write_max_drives bigint NOT NULL,
    is_repack_vo     boolean NOT NULL,
    disk_instance    text
);

CREATE TABLE cat_physical_library (
    name     text COLLATE "C" PRIMARY KEY,
    disabled boolean NOT NULL
);

CREATE TABLE cat_logical_library (
    name             text COLLATE "C" PRIMARY KEY,
    disabled         boolean NOT NULL,
    physical_library text
);

CREATE TABLE cat_tape_pool (
    name text COLLATE "C" PRIMARY KEY,
    vo   text NOT NULL
);

CREATE TABLE cat_storage_class (
    name      text COLLATE "C" PRIMARY KEY,
    nb_copies integer NOT NULL,
    vo        text NOT NULL
);

CREATE TABLE cat_archive_route (
    position      integer PRIMARY KEY,
    storage_class text NOT NULL,
    copy_nb       integer NOT NULL,
    tape_pool     text NOT NULL,
    route_type    text NOT NULL
);

CREATE TABLE cat_mount_policy (
    name                     text COLLATE "C" PRIMARY KEY,
    archive_priority         bigint NOT NULL,
    archive_min_request_age  bigint NOT NULL,
    retrieve_priority        bigint NOT NULL,
    retrieve_min_request_age bigint NOT NULL
);

CREATE TABLE cat_mount_rule (
    position      integer PRIMARY KEY,
    kind          text NOT NULL,
    disk_instance text NOT NULL,
    name          text NOT NULL,
    mount_policy  text NOT NULL
);

CREATE TABLE cat_disk_system (
    name                    text COLLATE "C" PRIMARY KEY,
    file_regexp             text NOT NULL,
    free_space_bytes        bigint NOT NULL,
    target_free_space_bytes bigint NOT NULL,
    sleep_time              bigint NOT NULL
);

CREATE TABLE cat_tape (
    vid                text COLLATE "C" PRIMARY KEY,
    tape_pool          text NOT NULL,
    logical_library    text NOT NULL,
    capacity_bytes     bigint NOT NULL,
    data_on_tape_bytes bigint NOT NULL,
    last_fseq          bigint NOT NULL,
    is_full            boolean NOT NULL,
    state              text NOT NULL,
    state_reason       text,
    media_type         text NOT NULL,
    vendor             text
);

CREATE TABLE cat_drive (
    name              text COLLATE "C" PRIMARY KEY,
    logical_library   text NOT NULL,
    scheduler_backend text,
    status            text NOT NULL,
    mount_type        text,
    vid               text,
    tape_pool         text,
    next_mount_type   text,
    next_vid          text,
    next_tape_pool    text
);

CREATE TABLE cat_reservation (
    drive       text COLLATE "C" NOT NULL,
    disk_system text COLLATE "C" NOT NULL,
    bytes       bigint NOT NULL,
    PRIMARY KEY (drive, disk_system)
);

CREATE TABLE cat_archive_file (
    archive_file_id bigint PRIMARY KEY,
    disk_instance   text NOT NULL,
    disk_file_id    text NOT NULL,
    size            bigint NOT NULL,
    storage_class   text NOT NULL
);

CREATE TABLE cat_tape_file (
    archive_file_id bigint NOT NULL,
    copy_nb         integer NOT NULL,
    vid             text NOT NULL,
    fseq            bigint NOT NULL,
    block_id        bigint NOT NULL,
    PRIMARY KEY (archive_file_id, copy_nb)
);
