//! `PgCatalogue`: the catalogue in PostgreSQL, shared by every process that opens the same schema.
//!
//! The tables (`migrations/0002_catalogue.sql`) hold the [`CatalogueSnapshot`], archive files and
//! tape files. Writers serialize on the single `cat_meta` row (`FOR UPDATE`): an edit reads the
//! snapshot, applies it in memory with [`CatalogueSnapshot::apply`] (the validating reference, so
//! this catalogue refuses exactly what the memory catalogue refuses), writes the rows that
//! changed and bumps `cat_meta.version`, all in one transaction. Readers cache the snapshot per
//! version: a snapshot costs one `SELECT version` while nothing changed, and a full consistent
//! read (one `REPEATABLE READ` transaction) after a change by any process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};
use tapesched_scheduler::catalogue::memory::{MemoryCatalogue, BLOCK_SIZE};
use tapesched_scheduler::catalogue::{
    archive_file_ids_exhausted, Catalogue, CatalogueEdit, CatalogueSnapshot, NewTapeFile,
};
use tapesched_scheduler::types::*;
use tapesched_scheduler::{Error, Result};

use crate::error::{commit_fail, retry, Fail};
use crate::schema::{connect_pool, ensure_schema};

type Tx = Transaction<'static, Postgres>;

/// The shared catalogue.
pub struct PgCatalogue {
    pool: PgPool,
    schema: String,
    cache: Mutex<Option<(i64, Arc<CatalogueSnapshot>)>>,
    max_attempts: u32,
}

fn parse<T: std::str::FromStr<Err = Error>>(s: &str) -> Result<T, Fail> {
    s.parse::<T>().map_err(|e| Fail::Fatal(Error::internal(format!("stored catalogue value: {}", e.message))))
}

fn route_type_str(t: ArchiveRouteType) -> &'static str {
    match t {
        ArchiveRouteType::Default => "default",
        ArchiveRouteType::Repack => "repack",
    }
}

fn rule_kind_str(k: MountRuleKind) -> &'static str {
    match k {
        MountRuleKind::Requester => "requester",
        MountRuleKind::Group => "group",
        MountRuleKind::Activity => "activity",
    }
}

async fn read_snapshot(tx: &mut Tx) -> Result<CatalogueSnapshot, Fail> {
    let mut s = CatalogueSnapshot::default();
    for row in sqlx::query("SELECT name FROM cat_disk_instance").fetch_all(&mut **tx).await? {
        s.disk_instances.insert(row.try_get("name")?);
    }
    for row in sqlx::query("SELECT * FROM cat_vo").fetch_all(&mut **tx).await? {
        let vo = VirtualOrganization {
            name: row.try_get("name")?,
            read_max_drives: row.try_get::<i64, _>("read_max_drives")? as u64,
            write_max_drives: row.try_get::<i64, _>("write_max_drives")? as u64,
            is_repack_vo: row.try_get("is_repack_vo")?,
            disk_instance: row.try_get("disk_instance")?,
        };
        s.vos.insert(vo.name.clone(), vo);
    }
    for row in sqlx::query("SELECT * FROM cat_physical_library").fetch_all(&mut **tx).await? {
        let l = PhysicalLibrary { name: row.try_get("name")?, disabled: row.try_get("disabled")? };
        s.physical_libraries.insert(l.name.clone(), l);
    }
    for row in sqlx::query("SELECT * FROM cat_logical_library").fetch_all(&mut **tx).await? {
        let l = LogicalLibrary {
            name: row.try_get("name")?,
            disabled: row.try_get("disabled")?,
            physical_library: row.try_get("physical_library")?,
        };
        s.logical_libraries.insert(l.name.clone(), l);
    }
    for row in sqlx::query("SELECT * FROM cat_tape_pool").fetch_all(&mut **tx).await? {
        let p = TapePool { name: row.try_get("name")?, vo: row.try_get("vo")? };
        s.tape_pools.insert(p.name.clone(), p);
    }
    for row in sqlx::query("SELECT * FROM cat_storage_class").fetch_all(&mut **tx).await? {
        let c = StorageClass {
            name: row.try_get("name")?,
            nb_copies: row.try_get::<i32, _>("nb_copies")? as u32,
            vo: row.try_get("vo")?,
        };
        s.storage_classes.insert(c.name.clone(), c);
    }
    for row in sqlx::query("SELECT * FROM cat_archive_route ORDER BY position").fetch_all(&mut **tx).await? {
        let t: String = row.try_get("route_type")?;
        s.archive_routes.push(ArchiveRoute {
            storage_class: row.try_get("storage_class")?,
            copy_nb: row.try_get::<i32, _>("copy_nb")? as u32,
            tape_pool: row.try_get("tape_pool")?,
            route_type: if t == "repack" { ArchiveRouteType::Repack } else { ArchiveRouteType::Default },
        });
    }
    for row in sqlx::query("SELECT * FROM cat_mount_policy").fetch_all(&mut **tx).await? {
        let p = MountPolicy {
            name: row.try_get("name")?,
            archive_priority: row.try_get::<i64, _>("archive_priority")? as u64,
            archive_min_request_age: row.try_get::<i64, _>("archive_min_request_age")? as u64,
            retrieve_priority: row.try_get::<i64, _>("retrieve_priority")? as u64,
            retrieve_min_request_age: row.try_get::<i64, _>("retrieve_min_request_age")? as u64,
        };
        s.mount_policies.insert(p.name.clone(), p);
    }
    for row in sqlx::query("SELECT * FROM cat_mount_rule ORDER BY position").fetch_all(&mut **tx).await? {
        let k: String = row.try_get("kind")?;
        s.mount_rules.push(MountRule {
            kind: match k.as_str() {
                "requester" => MountRuleKind::Requester,
                "group" => MountRuleKind::Group,
                _ => MountRuleKind::Activity,
            },
            disk_instance: row.try_get("disk_instance")?,
            name: row.try_get("name")?,
            mount_policy: row.try_get("mount_policy")?,
        });
    }
    for row in sqlx::query("SELECT * FROM cat_disk_system").fetch_all(&mut **tx).await? {
        let d = DiskSystem {
            name: row.try_get("name")?,
            file_regexp: row.try_get("file_regexp")?,
            free_space_bytes: row.try_get::<i64, _>("free_space_bytes")? as u64,
            target_free_space_bytes: row.try_get::<i64, _>("target_free_space_bytes")? as u64,
            sleep_time: row.try_get::<i64, _>("sleep_time")? as u64,
        };
        s.disk_systems.insert(d.name.clone(), d);
    }
    for row in sqlx::query("SELECT * FROM cat_tape").fetch_all(&mut **tx).await? {
        let state: String = row.try_get("state")?;
        let t = Tape {
            vid: row.try_get("vid")?,
            tape_pool: row.try_get("tape_pool")?,
            logical_library: row.try_get("logical_library")?,
            capacity_bytes: row.try_get::<i64, _>("capacity_bytes")? as u64,
            data_on_tape_bytes: row.try_get::<i64, _>("data_on_tape_bytes")? as u64,
            last_fseq: row.try_get::<i64, _>("last_fseq")? as u64,
            full: row.try_get("is_full")?,
            state: parse(&state)?,
            state_reason: row.try_get("state_reason")?,
            media_type: row.try_get("media_type")?,
            vendor: row.try_get("vendor")?,
        };
        s.tapes.insert(t.vid.clone(), t);
    }
    for row in sqlx::query("SELECT * FROM cat_drive").fetch_all(&mut **tx).await? {
        let status: String = row.try_get("status")?;
        let opt_type = |c: &str| -> Result<Option<MountType>, Fail> {
            row.try_get::<Option<String>, _>(c)?.map(|s| parse::<MountType>(&s)).transpose()
        };
        let d = DriveState {
            name: row.try_get("name")?,
            logical_library: row.try_get("logical_library")?,
            scheduler_backend: row.try_get("scheduler_backend")?,
            status: parse(&status)?,
            mount_type: opt_type("mount_type")?,
            vid: row.try_get("vid")?,
            tape_pool: row.try_get("tape_pool")?,
            next_mount_type: opt_type("next_mount_type")?,
            next_vid: row.try_get("next_vid")?,
            next_tape_pool: row.try_get("next_tape_pool")?,
            reason: row.try_get("reason")?,
        };
        s.drives.insert(d.name.clone(), d);
    }
    for row in sqlx::query("SELECT * FROM cat_reservation").fetch_all(&mut **tx).await? {
        s.reservations
            .insert((row.try_get("drive")?, row.try_get("disk_system")?), row.try_get::<i64, _>("bytes")? as u64);
    }
    Ok(s)
}

/// Writes the rows of `new` that differ from `old` (deleting the ones `new` lacks).
async fn write_diff(tx: &mut Tx, old: &CatalogueSnapshot, new: &CatalogueSnapshot) -> Result<(), Fail> {
    for i in new.disk_instances.difference(&old.disk_instances) {
        sqlx::query("INSERT INTO cat_disk_instance (name) VALUES ($1)").bind(i).execute(&mut **tx).await?;
    }
    for i in old.disk_instances.difference(&new.disk_instances) {
        sqlx::query("DELETE FROM cat_disk_instance WHERE name = $1").bind(i).execute(&mut **tx).await?;
    }
    macro_rules! diff_map {
        ($field:ident, $delete:literal, |$v:ident| $upsert:expr) => {
            for $v in new.$field.iter().filter(|(k, v)| old.$field.get(*k) != Some(*v)).map(|(_, v)| v) {
                $upsert.execute(&mut **tx).await?;
            }
            for k in old.$field.keys().filter(|k| !new.$field.contains_key(*k)) {
                sqlx::query($delete).bind(k).execute(&mut **tx).await?;
            }
        };
    }
    diff_map!(vos, "DELETE FROM cat_vo WHERE name = $1", |v| sqlx::query(
        "INSERT INTO cat_vo (name, read_max_drives, write_max_drives, is_repack_vo, disk_instance)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET read_max_drives = excluded.read_max_drives,
             write_max_drives = excluded.write_max_drives, is_repack_vo = excluded.is_repack_vo,
             disk_instance = excluded.disk_instance"
    )
    .bind(&v.name)
    .bind(v.read_max_drives as i64)
    .bind(v.write_max_drives as i64)
    .bind(v.is_repack_vo)
    .bind(&v.disk_instance));
    diff_map!(physical_libraries, "DELETE FROM cat_physical_library WHERE name = $1", |v| sqlx::query(
        "INSERT INTO cat_physical_library (name, disabled) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET disabled = excluded.disabled"
    )
    .bind(&v.name)
    .bind(v.disabled));
    diff_map!(logical_libraries, "DELETE FROM cat_logical_library WHERE name = $1", |v| sqlx::query(
        "INSERT INTO cat_logical_library (name, disabled, physical_library) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET disabled = excluded.disabled, physical_library = excluded.physical_library"
    )
    .bind(&v.name)
    .bind(v.disabled)
    .bind(&v.physical_library));
    diff_map!(tape_pools, "DELETE FROM cat_tape_pool WHERE name = $1", |v| sqlx::query(
        "INSERT INTO cat_tape_pool (name, vo) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET vo = excluded.vo"
    )
    .bind(&v.name)
    .bind(&v.vo));
    diff_map!(storage_classes, "DELETE FROM cat_storage_class WHERE name = $1", |v| sqlx::query(
        "INSERT INTO cat_storage_class (name, nb_copies, vo) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET nb_copies = excluded.nb_copies, vo = excluded.vo"
    )
    .bind(&v.name)
    .bind(v.nb_copies as i32)
    .bind(&v.vo));
    diff_map!(mount_policies, "DELETE FROM cat_mount_policy WHERE name = $1", |v| sqlx::query(
        "INSERT INTO cat_mount_policy (name, archive_priority, archive_min_request_age, retrieve_priority,
             retrieve_min_request_age) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET archive_priority = excluded.archive_priority,
             archive_min_request_age = excluded.archive_min_request_age,
             retrieve_priority = excluded.retrieve_priority,
             retrieve_min_request_age = excluded.retrieve_min_request_age"
    )
    .bind(&v.name)
    .bind(v.archive_priority as i64)
    .bind(v.archive_min_request_age as i64)
    .bind(v.retrieve_priority as i64)
    .bind(v.retrieve_min_request_age as i64));
    diff_map!(disk_systems, "DELETE FROM cat_disk_system WHERE name = $1", |v| sqlx::query(
        "INSERT INTO cat_disk_system (name, file_regexp, free_space_bytes, target_free_space_bytes, sleep_time)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET file_regexp = excluded.file_regexp,
             free_space_bytes = excluded.free_space_bytes,
             target_free_space_bytes = excluded.target_free_space_bytes, sleep_time = excluded.sleep_time"
    )
    .bind(&v.name)
    .bind(&v.file_regexp)
    .bind(v.free_space_bytes as i64)
    .bind(v.target_free_space_bytes as i64)
    .bind(v.sleep_time as i64));
    diff_map!(tapes, "DELETE FROM cat_tape WHERE vid = $1", |v| sqlx::query(
        "INSERT INTO cat_tape (vid, tape_pool, logical_library, capacity_bytes, data_on_tape_bytes, last_fseq, is_full,
             state, state_reason, media_type, vendor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (vid) DO UPDATE SET tape_pool = excluded.tape_pool, logical_library = excluded.logical_library,
             capacity_bytes = excluded.capacity_bytes, data_on_tape_bytes = excluded.data_on_tape_bytes,
             last_fseq = excluded.last_fseq, is_full = excluded.is_full, state = excluded.state,
             state_reason = excluded.state_reason, media_type = excluded.media_type, vendor = excluded.vendor"
    )
    .bind(&v.vid)
    .bind(&v.tape_pool)
    .bind(&v.logical_library)
    .bind(v.capacity_bytes as i64)
    .bind(v.data_on_tape_bytes as i64)
    .bind(v.last_fseq as i64)
    .bind(v.full)
    .bind(v.state.as_str())
    .bind(&v.state_reason)
    .bind(&v.media_type)
    .bind(&v.vendor));
    diff_map!(drives, "DELETE FROM cat_drive WHERE name = $1", |v| sqlx::query(
        "INSERT INTO cat_drive (name, logical_library, scheduler_backend, status, mount_type, vid, tape_pool,
             next_mount_type, next_vid, next_tape_pool, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (name) DO UPDATE SET logical_library = excluded.logical_library,
             scheduler_backend = excluded.scheduler_backend, status = excluded.status,
             mount_type = excluded.mount_type, vid = excluded.vid, tape_pool = excluded.tape_pool,
             next_mount_type = excluded.next_mount_type, next_vid = excluded.next_vid,
             next_tape_pool = excluded.next_tape_pool, reason = excluded.reason"
    )
    .bind(&v.name)
    .bind(&v.logical_library)
    .bind(&v.scheduler_backend)
    .bind(v.status.as_str())
    .bind(v.mount_type.map(|t| t.as_str()))
    .bind(&v.vid)
    .bind(&v.tape_pool)
    .bind(v.next_mount_type.map(|t| t.as_str()))
    .bind(&v.next_vid)
    .bind(&v.next_tape_pool)
    .bind(&v.reason));
    if old.archive_routes != new.archive_routes {
        sqlx::query("DELETE FROM cat_archive_route").execute(&mut **tx).await?;
        for (i, r) in new.archive_routes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO cat_archive_route (position, storage_class, copy_nb, tape_pool, route_type)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(i as i32)
            .bind(&r.storage_class)
            .bind(r.copy_nb as i32)
            .bind(&r.tape_pool)
            .bind(route_type_str(r.route_type))
            .execute(&mut **tx)
            .await?;
        }
    }
    if old.mount_rules != new.mount_rules {
        sqlx::query("DELETE FROM cat_mount_rule").execute(&mut **tx).await?;
        for (i, r) in new.mount_rules.iter().enumerate() {
            sqlx::query(
                "INSERT INTO cat_mount_rule (position, kind, disk_instance, name, mount_policy)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(i as i32)
            .bind(rule_kind_str(r.kind))
            .bind(&r.disk_instance)
            .bind(&r.name)
            .bind(&r.mount_policy)
            .execute(&mut **tx)
            .await?;
        }
    }
    for ((drive, ds), bytes) in &new.reservations {
        if old.reservations.get(&(drive.clone(), ds.clone())) != Some(bytes) {
            sqlx::query(
                "INSERT INTO cat_reservation (drive, disk_system, bytes) VALUES ($1, $2, $3)
                 ON CONFLICT (drive, disk_system) DO UPDATE SET bytes = excluded.bytes",
            )
            .bind(drive)
            .bind(ds)
            .bind(*bytes as i64)
            .execute(&mut **tx)
            .await?;
        }
    }
    for (drive, ds) in old.reservations.keys().filter(|k| !new.reservations.contains_key(*k)) {
        sqlx::query("DELETE FROM cat_reservation WHERE drive = $1 AND disk_system = $2")
            .bind(drive)
            .bind(ds)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl PgCatalogue {
    /// Connects to `schema` on the server at `url`, creating and migrating it if needed.
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        let pool = connect_pool(url, schema, 4, Duration::from_secs(30)).await?;
        ensure_schema(&pool, schema).await?;
        Ok(Self::with_pool(pool, schema))
    }

    /// A catalogue over an existing pool (whose connections use the schema, already migrated).
    pub fn with_pool(pool: PgPool, schema: &str) -> Self {
        PgCatalogue { pool, schema: schema.to_string(), cache: Mutex::new(None), max_attempts: 8 }
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Replaces the whole catalogue with `snapshot` and `files`, validated as the memory
    /// catalogue validates them. Archive file ids handed out before are never handed out again.
    pub async fn load(&self, snapshot: CatalogueSnapshot, files: Vec<ArchiveFile>) -> Result<()> {
        MemoryCatalogue::new(snapshot.clone(), files.clone())?;
        retry(self.max_attempts, || self.load_once(&snapshot, &files)).await
    }

    async fn load_once(&self, snapshot: &CatalogueSnapshot, files: &[ArchiveFile]) -> Result<(), Fail> {
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM cat_meta FOR UPDATE").fetch_one(&mut *tx).await?;
        for table in [
            "DELETE FROM cat_disk_instance",
            "DELETE FROM cat_vo",
            "DELETE FROM cat_physical_library",
            "DELETE FROM cat_logical_library",
            "DELETE FROM cat_tape_pool",
            "DELETE FROM cat_storage_class",
            "DELETE FROM cat_archive_route",
            "DELETE FROM cat_mount_policy",
            "DELETE FROM cat_mount_rule",
            "DELETE FROM cat_disk_system",
            "DELETE FROM cat_tape",
            "DELETE FROM cat_drive",
            "DELETE FROM cat_reservation",
            "DELETE FROM cat_tape_file",
            "DELETE FROM cat_archive_file",
        ] {
            sqlx::query(table).execute(&mut *tx).await?;
        }
        write_diff(&mut tx, &CatalogueSnapshot::default(), snapshot).await?;
        let ids: Vec<i64> = files.iter().map(|f| f.archive_file_id as i64).collect();
        let instances: Vec<&str> = files.iter().map(|f| f.disk_instance.as_str()).collect();
        let disk_ids: Vec<&str> = files.iter().map(|f| f.disk_file_id.as_str()).collect();
        let sizes: Vec<i64> = files.iter().map(|f| f.size as i64).collect();
        let classes: Vec<&str> = files.iter().map(|f| f.storage_class.as_str()).collect();
        sqlx::query(
            "INSERT INTO cat_archive_file (archive_file_id, disk_instance, disk_file_id, size, storage_class)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[])",
        )
        .bind(&ids)
        .bind(&instances)
        .bind(&disk_ids)
        .bind(&sizes)
        .bind(&classes)
        .execute(&mut *tx)
        .await?;
        let copies: Vec<(&ArchiveFile, &TapeFile)> =
            files.iter().flat_map(|f| f.copies.iter().map(move |c| (f, c))).collect();
        sqlx::query(
            "INSERT INTO cat_tape_file (archive_file_id, copy_nb, vid, fseq, block_id)
             SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::int8[], $5::int8[])",
        )
        .bind(copies.iter().map(|(f, _)| f.archive_file_id as i64).collect::<Vec<_>>())
        .bind(copies.iter().map(|(_, c)| c.copy_nb as i32).collect::<Vec<_>>())
        .bind(copies.iter().map(|(_, c)| c.vid.as_str()).collect::<Vec<_>>())
        .bind(copies.iter().map(|(_, c)| c.fseq as i64).collect::<Vec<_>>())
        .bind(copies.iter().map(|(_, c)| c.block_id as i64).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        // The next id is 2^63 once 2^63-1 is taken (none left): numeric (migration 7), bound as text.
        let next = files.iter().map(|f| u128::from(f.archive_file_id) + 1).max().unwrap_or(1);
        sqlx::query(
            "UPDATE cat_meta SET version = version + 1,
                 next_archive_file_id = greatest(next_archive_file_id, $1::text::numeric)",
        )
        .bind(next.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map_err(commit_fail)?;
        *self.lock() = Some((version + 1, Arc::new(snapshot.clone())));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(i64, Arc<CatalogueSnapshot>)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, version: i64) -> Option<Arc<CatalogueSnapshot>> {
        self.lock().as_ref().filter(|(v, _)| *v == version).map(|(_, s)| s.clone())
    }

    /// The snapshot at `version`, read in `tx` unless cached.
    async fn snapshot_in(&self, tx: &mut Tx, version: i64) -> Result<Arc<CatalogueSnapshot>, Fail> {
        if let Some(s) = self.cached(version) {
            return Ok(s);
        }
        let s = Arc::new(read_snapshot(tx).await?);
        *self.lock() = Some((version, s.clone()));
        Ok(s)
    }

    async fn snapshot_once(&self) -> Result<Arc<CatalogueSnapshot>, Fail> {
        let mut conn = self.pool.acquire().await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM cat_meta").fetch_one(&mut *conn).await?;
        drop(conn);
        if let Some(s) = self.cached(version) {
            return Ok(s);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM cat_meta").fetch_one(&mut *tx).await?;
        let s = self.snapshot_in(&mut tx, version).await?;
        tx.rollback().await.ok();
        Ok(s)
    }

    /// Locks the catalogue for writing; returns the version and the snapshot.
    async fn begin_write(&self) -> Result<(Tx, i64, Arc<CatalogueSnapshot>), Fail> {
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM cat_meta FOR UPDATE").fetch_one(&mut *tx).await?;
        let snap = self.snapshot_in(&mut tx, version).await?;
        Ok((tx, version, snap))
    }

    async fn finish_write(&self, mut tx: Tx, version: i64, new: CatalogueSnapshot) -> Result<(), Fail> {
        sqlx::query("UPDATE cat_meta SET version = $1").bind(version + 1).execute(&mut *tx).await?;
        tx.commit().await.map_err(commit_fail)?;
        *self.lock() = Some((version + 1, Arc::new(new)));
        Ok(())
    }

    async fn apply_once(&self, edit: &CatalogueEdit) -> Result<(), Fail> {
        let (mut tx, version, snap) = self.begin_write().await?;
        let mut new = (*snap).clone();
        new.apply(edit.clone())?;
        write_diff(&mut tx, &snap, &new).await?;
        self.finish_write(tx, version, new).await
    }

    async fn record_once(&self, file: &NewTapeFile) -> Result<TapeFile, Fail> {
        let (mut tx, version, snap) = self.begin_write().await?;
        let mut new = (*snap).clone();
        let written = new.write_tape_file(file, BLOCK_SIZE)?;
        write_diff(&mut tx, &snap, &new).await?;
        sqlx::query(
            "INSERT INTO cat_archive_file (archive_file_id, disk_instance, disk_file_id, size, storage_class)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (archive_file_id) DO NOTHING",
        )
        .bind(file.archive_file_id as i64)
        .bind(&file.disk_instance)
        .bind(&file.disk_file_id)
        .bind(file.size as i64)
        .bind(&file.storage_class)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO cat_tape_file (archive_file_id, copy_nb, vid, fseq, block_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (archive_file_id, copy_nb) DO UPDATE SET vid = excluded.vid, fseq = excluded.fseq,
                 block_id = excluded.block_id",
        )
        .bind(file.archive_file_id as i64)
        .bind(written.copy_nb as i32)
        .bind(&written.vid)
        .bind(written.fseq as i64)
        .bind(written.block_id as i64)
        .execute(&mut *tx)
        .await?;
        self.finish_write(tx, version, new).await?;
        Ok(written)
    }

    /// Records several files in one transaction: the snapshot changed once, one UNNEST insert
    /// each for the archive files and their copies (no two with the same file and copy number:
    /// [`Catalogue::record_tape_files`] sends such lists one file at a time).
    async fn record_many_once(&self, files: &[NewTapeFile]) -> Result<Vec<TapeFile>, Fail> {
        let (mut tx, version, snap) = self.begin_write().await?;
        let mut new = (*snap).clone();
        let mut written = Vec::with_capacity(files.len());
        for file in files {
            written.push(new.write_tape_file(file, BLOCK_SIZE)?);
        }
        write_diff(&mut tx, &snap, &new).await?;
        sqlx::query(
            "INSERT INTO cat_archive_file (archive_file_id, disk_instance, disk_file_id, size, storage_class)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[])
             ON CONFLICT (archive_file_id) DO NOTHING",
        )
        .bind(files.iter().map(|f| f.archive_file_id as i64).collect::<Vec<_>>())
        .bind(files.iter().map(|f| f.disk_instance.as_str()).collect::<Vec<_>>())
        .bind(files.iter().map(|f| f.disk_file_id.as_str()).collect::<Vec<_>>())
        .bind(files.iter().map(|f| f.size as i64).collect::<Vec<_>>())
        .bind(files.iter().map(|f| f.storage_class.as_str()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO cat_tape_file (archive_file_id, copy_nb, vid, fseq, block_id)
             SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::int8[], $5::int8[])
             ON CONFLICT (archive_file_id, copy_nb) DO UPDATE SET vid = excluded.vid, fseq = excluded.fseq,
                 block_id = excluded.block_id",
        )
        .bind(files.iter().map(|f| f.archive_file_id as i64).collect::<Vec<_>>())
        .bind(written.iter().map(|w| w.copy_nb as i32).collect::<Vec<_>>())
        .bind(written.iter().map(|w| w.vid.as_str()).collect::<Vec<_>>())
        .bind(written.iter().map(|w| w.fseq as i64).collect::<Vec<_>>())
        .bind(written.iter().map(|w| w.block_id as i64).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        self.finish_write(tx, version, new).await?;
        Ok(written)
    }

    async fn archive_file_once(&self, id: u64) -> Result<Option<ArchiveFile>, Fail> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("SELECT * FROM cat_archive_file WHERE archive_file_id = $1")
            .bind(id as i64)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let copies = sqlx::query("SELECT * FROM cat_tape_file WHERE archive_file_id = $1 ORDER BY copy_nb")
            .bind(id as i64)
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await.ok();
        let mut file = ArchiveFile {
            archive_file_id: id,
            disk_instance: row.try_get("disk_instance")?,
            disk_file_id: row.try_get("disk_file_id")?,
            size: row.try_get::<i64, _>("size")? as u64,
            storage_class: row.try_get("storage_class")?,
            copies: vec![],
        };
        for c in copies {
            file.copies.push(TapeFile {
                copy_nb: c.try_get::<i32, _>("copy_nb")? as u32,
                vid: c.try_get("vid")?,
                fseq: c.try_get::<i64, _>("fseq")? as u64,
                block_id: c.try_get::<i64, _>("block_id")? as u64,
            });
        }
        Ok(Some(file))
    }

    async fn tape_files_once(&self, vid: &str, after_fseq: u64, limit: u64) -> Result<Vec<ArchiveFile>, Fail> {
        // fSeqs are at most 2^63-1: nothing lies above that.
        let Ok(after) = i64::try_from(after_fseq) else { return Ok(vec![]) };
        let limit = limit.min(i64::MAX as u64) as i64;
        if limit == 0 {
            return Ok(vec![]);
        }
        let mut conn = self.pool.acquire().await?;
        // One statement: the files' copies on the tape by fSeq (index `cat_tape_file_vid`), each
        // joined to its file and to all its copies, one row per copy in (fSeq, copy) order; the
        // rows of a file are grouped here (no aggregate per file in the server).
        let rows = sqlx::query(
            "WITH f AS (
                 SELECT archive_file_id, fseq FROM cat_tape_file WHERE vid = $1 AND fseq > $2
                 ORDER BY fseq LIMIT $3
             )
             SELECT f.fseq AS at_fseq, a.archive_file_id, a.disk_instance, a.disk_file_id, a.size, a.storage_class,
                    t.copy_nb, t.vid, t.fseq, t.block_id
             FROM f JOIN cat_archive_file a ON a.archive_file_id = f.archive_file_id
                    JOIN cat_tape_file t ON t.archive_file_id = f.archive_file_id
             ORDER BY f.fseq, t.copy_nb",
        )
        .bind(vid)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut out: Vec<ArchiveFile> = Vec::with_capacity(rows.len());
        let mut current: Option<i64> = None;
        for row in rows {
            let at: i64 = row.try_get("at_fseq")?;
            let copy = TapeFile {
                copy_nb: row.try_get::<i32, _>("copy_nb")? as u32,
                vid: row.try_get("vid")?,
                fseq: row.try_get::<i64, _>("fseq")? as u64,
                block_id: row.try_get::<i64, _>("block_id")? as u64,
            };
            match out.last_mut() {
                Some(file) if current == Some(at) => file.copies.push(copy),
                _ => {
                    current = Some(at);
                    out.push(ArchiveFile {
                        archive_file_id: row.try_get::<i64, _>("archive_file_id")? as u64,
                        disk_instance: row.try_get("disk_instance")?,
                        disk_file_id: row.try_get("disk_file_id")?,
                        size: row.try_get::<i64, _>("size")? as u64,
                        storage_class: row.try_get("storage_class")?,
                        copies: vec![copy],
                    });
                }
            }
        }
        Ok(out)
    }

    async fn tape_copy_classes_once(&self, vid: &str) -> Result<Vec<(String, u32)>, Fail> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<(String, i32)> = sqlx::query_as(
            "SELECT DISTINCT a.storage_class, t.copy_nb
             FROM cat_tape_file t JOIN cat_archive_file a ON a.archive_file_id = t.archive_file_id
             WHERE t.vid = $1",
        )
        .bind(vid)
        .fetch_all(&mut *conn)
        .await?;
        // Sorted here: names compare byte-wise, whatever the database's collation.
        let mut out: Vec<(String, u32)> = rows.into_iter().map(|(sc, c)| (sc, c as u32)).collect();
        out.sort();
        Ok(out)
    }

    async fn reserve_once(&self, requested: Option<u64>) -> Result<u64, Fail> {
        let mut tx = self.pool.begin().await?;
        let id = match requested {
            Some(id) => {
                tapesched_scheduler::bounds::check("archive_file_id", id)?;
                let id = id as i64;
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT archive_file_id FROM cat_archive_file WHERE archive_file_id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_some() {
                    return Err(Fail::Fatal(Error::conflict(format!("archive file {id} already exists"))));
                }
                sqlx::query(
                    "UPDATE cat_meta SET next_archive_file_id = greatest(next_archive_file_id, $1::numeric + 1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id: Option<i64> = sqlx::query_scalar(
                    "UPDATE cat_meta SET next_archive_file_id = next_archive_file_id + 1
                     WHERE next_archive_file_id <= 9223372036854775807
                     RETURNING (next_archive_file_id - 1)::int8",
                )
                .fetch_optional(&mut *tx)
                .await?;
                id.ok_or_else(archive_file_ids_exhausted)?
            }
        };
        tx.commit().await.map_err(commit_fail)?;
        Ok(id as u64)
    }
}

#[async_trait]
impl Catalogue for PgCatalogue {
    async fn snapshot(&self) -> Result<Arc<CatalogueSnapshot>> {
        retry(self.max_attempts, || self.snapshot_once()).await
    }

    async fn apply(&self, edit: CatalogueEdit) -> Result<()> {
        retry(self.max_attempts, || self.apply_once(&edit)).await
    }

    async fn archive_file(&self, archive_file_id: u64) -> Result<Option<ArchiveFile>> {
        retry(self.max_attempts, || self.archive_file_once(archive_file_id)).await
    }

    async fn reserve_archive_file_id(&self, requested: Option<u64>) -> Result<u64> {
        retry(self.max_attempts, || self.reserve_once(requested)).await
    }

    async fn next_request_id(&self) -> Result<u64> {
        retry(self.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            let id: i64 = sqlx::query_scalar("SELECT nextval('cat_request_id_seq')").fetch_one(&mut *conn).await?;
            Ok(id as u64)
        })
        .await
    }

    async fn record_tape_file(&self, file: NewTapeFile) -> Result<TapeFile> {
        retry(self.max_attempts, || self.record_once(&file)).await
    }

    async fn record_tape_files(&self, files: Vec<NewTapeFile>) -> Result<Vec<TapeFile>> {
        let mut keys: Vec<(u64, u32)> = files.iter().map(|f| (f.archive_file_id, f.copy_nb)).collect();
        keys.sort_unstable();
        keys.dedup();
        if files.len() < 2 || keys.len() < files.len() {
            // One file, or a copy given twice (one statement cannot upsert a row twice).
            let mut out = Vec::with_capacity(files.len());
            for file in files {
                out.push(self.record_tape_file(file).await?);
            }
            return Ok(out);
        }
        retry(self.max_attempts, || self.record_many_once(&files)).await
    }

    async fn next_request_ids(&self, n: u64) -> Result<Vec<u64>> {
        if n == 0 {
            return Ok(vec![]);
        }
        let n = i64::try_from(n).map_err(|_| Error::invalid(format!("cannot hand out {n} request ids at once")))?;
        retry(self.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            let mut ids: Vec<i64> =
                sqlx::query_scalar("SELECT nextval('cat_request_id_seq') FROM generate_series(1, $1::int8)")
                    .bind(n)
                    .fetch_all(&mut *conn)
                    .await?;
            ids.sort_unstable();
            Ok(ids.into_iter().map(|i| i as u64).collect())
        })
        .await
    }

    async fn tape_files(&self, vid: &str, after_fseq: u64, limit: u64) -> Result<Vec<ArchiveFile>> {
        retry(self.max_attempts, || self.tape_files_once(vid, after_fseq, limit)).await
    }

    async fn tape_copy_classes(&self, vid: &str) -> Result<Vec<(String, u32)>> {
        retry(self.max_attempts, || self.tape_copy_classes_once(vid)).await
    }
}
