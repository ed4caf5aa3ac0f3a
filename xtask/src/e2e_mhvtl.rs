//! `cargo xtask e2e --library mhvtl`: what the processes mode needs to run a workload on the real
//! devices of an mhVTL host instead of the simulator ([`crate::e2e_processes`] does the run).
//!
//! * The drives: `--config` is the host's mhVTL configuration (`/etc/mhvtl`), whose `device.conf`
//!   names the library's drives by unit serial number, in order; the tape daemon drives them by
//!   their `nstN` devices. The `i`-th drive of `device.conf` is the drive of ordinal `i` (mtx's
//!   data transfer element `i`), the same assumption the library makes when it finds its drives
//!   ([`map_drives`]).
//! * The cartridges: every tape of the plan must be in the library ([`check_cartridges`]).
//! * Before each backend's run (the backends take turns: they share one library) every drive is
//!   emptied and every tape of the plan erased, its prefilled files written again
//!   ([`prepare`]), so that each backend starts from the tapes its catalogue describes.
//!
//! The library is driven through the [`Library`] trait, so [`prepare`] is tested on the simulator;
//! the mapping and the checks are tested on inventories read from recorded `mtx status` output.

use anyhow::{bail, Context, Result};
use tapesched_e2e::catalogue::{sizes_checksum, Plan};
use tapesched_library::{DriveState, Inventory, Library};

/// The host's drive names for the plan's drives, in the plan's order: the `i`-th drive of
/// `device.conf` is the library's drive of ordinal `i`. Fails naming both counts when the host
/// has fewer drives than the configuration.
pub fn map_drives(plan: &Plan, inventory: &Inventory) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(plan.drives.len());
    for (i, conf_name) in plan.drives.iter().enumerate() {
        let Some(d) = inventory.drives.iter().find(|d| d.ordinal as usize == i) else {
            bail!(
                "--config names {} drive(s) ({}) but the library on this host has {}: --config must be this host's \
                 mhVTL configuration (/etc/mhvtl)",
                plan.drives.len(),
                plan.drives.join(", "),
                inventory.drives.len()
            );
        };
        if names.contains(&d.name) {
            bail!("drive {conf_name}: the library reports two drives of ordinal {i}");
        }
        names.push(d.name.clone());
    }
    Ok(names)
}

/// Checks that every tape of the plan is in the library (in a slot or a drive); fails naming the
/// missing cartridges.
pub fn check_cartridges(plan: &Plan, inventory: &Inventory) -> Result<()> {
    let present = inventory.barcodes();
    let missing: Vec<&str> =
        plan.tapes.iter().map(|t| t.barcode.as_str()).filter(|b| !present.iter().any(|p| p == b)).collect();
    if !missing.is_empty() {
        bail!(
            "{} cartridge(s) of the workload are not in the library: {} (the library holds {})",
            missing.len(),
            missing.join(", "),
            present.len()
        );
    }
    Ok(())
}

/// Readies the library for one backend's run: every drive emptied (its cartridge back to a
/// slot), then every tape of the plan mounted in `drive`, erased, its prefilled files written
/// (with the checksums the tape daemon's `sizes` data path expects) and put back. `progress` is
/// told each tape as it is done.
pub async fn prepare(lib: &dyn Library, drive: &str, plan: &Plan, mut progress: impl FnMut(&str)) -> Result<()> {
    let inventory = lib.inventory().await.context("reading the library's inventory")?;
    for d in inventory.drives.iter().filter(|d| d.barcode.is_some()) {
        let status = lib.status(&d.name).await.with_context(|| format!("drive {}", d.name))?;
        if status.state == DriveState::Failed {
            bail!("drive {} has failed with a cartridge inside: repair it before the run", d.name);
        }
        lib.dismount(&d.name).await.with_context(|| format!("emptying drive {}", d.name))?;
    }
    for t in &plan.tapes {
        lib.mount(&t.barcode, drive).await.with_context(|| format!("mounting {} in {drive}", t.barcode))?;
        lib.erase(drive).await.with_context(|| format!("erasing {} in {drive}", t.barcode))?;
        for (k, id) in t.prefilled.clone().enumerate() {
            let pos = lib
                .write_file(drive, t.prefill_size, sizes_checksum(id))
                .await
                .with_context(|| format!("writing prefilled file {id} on {}", t.barcode))?;
            if pos.fseq != k as u64 + 1 {
                bail!("{}: prefilled file {id} went to fSeq {}, expected {}", t.barcode, pos.fseq, k + 1);
            }
        }
        lib.dismount(drive).await.with_context(|| format!("putting {} back", t.barcode))?;
        progress(&t.barcode);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::path::PathBuf;
    use std::process::{ExitStatus, Output};
    use std::sync::Arc;
    use tapesched_e2e::Workload;
    use tapesched_library::mhvtl::{MhvtlLibrary, Runner};
    use tapesched_library::sim::{SimClock, SimLibrary};
    use tapesched_library::{Element, LibraryError};

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn smoke() -> (Workload, Plan) {
        let w = Workload::read(&root().join("compat/workloads/smoke.yml")).unwrap();
        let plan = Plan::new(&root().join("compat/mhvtl/lto9"), &w).unwrap();
        (w, plan)
    }

    /// Answers `lsscsi -g` and `mtx status` with the outputs recorded on an mhVTL host.
    struct Recorded;

    impl Runner for Recorded {
        fn run(&self, program: &str, args: &[String]) -> std::io::Result<Output> {
            let file = match (program, args.join(" ").as_str()) {
                ("lsscsi", "-g") => "lsscsi-g.txt",
                ("mtx", "-f /dev/sg1 status") => "mtx-status.txt",
                (p, a) => panic!("not recorded: {p} {a}"),
            };
            let stdout = std::fs::read(root().join("compat/mhvtl/recorded").join(file))?;
            Ok(Output { status: ExitStatus::from_raw(0), stdout, stderr: Vec::new() })
        }
    }

    /// The inventory of the recorded mhVTL library (six drives, `nst0`..), as the real library
    /// code reads it.
    async fn recorded_inventory() -> Inventory {
        let lib = MhvtlLibrary::discover_with(Arc::new(Recorded)).unwrap();
        lib.inventory().await.unwrap()
    }

    #[tokio::test]
    async fn device_conf_drives_map_to_the_hosts_drives_by_ordinal() {
        let (_, plan) = smoke();
        let inv = recorded_inventory().await;
        assert_eq!(plan.drives, ["ULT11", "ULT12", "ULT13", "ULT14", "ULT15", "ULT16"]);
        assert_eq!(map_drives(&plan, &inv).unwrap(), ["nst0", "nst1", "nst2", "nst3", "nst4", "nst5"]);
        // A host with fewer drives than the configuration: both counts named.
        let mut small = inv.clone();
        small.drives.truncate(4);
        let e = map_drives(&plan, &small).unwrap_err().to_string();
        assert!(e.contains("--config names 6 drive(s) (ULT11, ULT12") && e.contains("this host has 4"), "{e}");
    }

    #[tokio::test]
    async fn cartridges_missing_from_the_library_are_named() {
        let (_, plan) = smoke();
        let mut inv = recorded_inventory().await;
        check_cartridges(&plan, &inv).unwrap();
        for s in &mut inv.slots {
            if s.barcode.as_deref() == Some("V00112L9") {
                s.barcode = None;
            }
        }
        let e = check_cartridges(&plan, &inv).unwrap_err().to_string();
        assert!(e.starts_with("1 cartridge(s) of the workload are not in the library: V00112L9"), "{e}");
    }

    /// On the simulator (the same trait the real devices implement): a drive left holding a
    /// cartridge is emptied, a tape holding an earlier run's files is erased, and the prefilled
    /// tapes hold exactly their files, readable with the checksums the tape daemon expects.
    #[tokio::test]
    async fn prepare_empties_the_drives_and_leaves_each_tape_as_its_catalogue_says() {
        let (w, plan) = smoke();
        let lib =
            SimLibrary::from_dir(&root().join("compat/mhvtl/lto9"), w.library_id, Arc::new(SimClock::new(0))).unwrap();
        lib.mount("V00101L9", "ULT13").await.unwrap();
        for _ in 0..3 {
            lib.write_file("ULT13", 1_000, 1).await.unwrap();
        }
        let mut done = Vec::new();
        prepare(&lib, "ULT11", &plan, |b| done.push(b.to_string())).await.unwrap();
        assert_eq!(done.len(), plan.tapes.len());
        let inv = lib.inventory().await.unwrap();
        assert!(inv.drives.iter().all(|d| d.barcode.is_none()), "{:?}", inv.drives);
        for t in &plan.tapes {
            assert!(matches!(inv.locate(&t.barcode), Some(Element::Slot(_))), "{}", t.barcode);
            let files = lib.cartridge(&t.barcode).unwrap().3;
            assert_eq!(files, t.prefilled.end - t.prefilled.start, "{}", t.barcode);
        }
        let old = plan.tapes.iter().find(|t| !t.prefilled.is_empty()).unwrap();
        lib.mount(&old.barcode, "ULT12").await.unwrap();
        let last = old.prefilled.end - old.prefilled.start;
        let meta = lib.read_file("ULT12", last).await.unwrap();
        assert_eq!((meta.size, meta.checksum), (old.prefill_size, sizes_checksum(old.prefilled.end - 1)));
        // A tape the library does not hold stops the preparation, naming it.
        let mut bad = plan.clone();
        bad.tapes[0].barcode = "X99999L9".into();
        let e = prepare(&lib, "ULT11", &bad, |_| {}).await.unwrap_err();
        assert!(format!("{e:#}").contains("mounting X99999L9 in ULT11"), "{e:#}");
        assert!(e.chain().any(|c| matches!(c.downcast_ref(), Some(LibraryError::UnknownBarcode { .. }))), "{e:#}");
    }
}
