//! The real-devices path: its parsers on the outputs recorded in `compat/mhvtl/recorded/`, the
//! commands it runs (through a scripted runner), and its error on a host without mhVTL.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Output};
use std::sync::{Arc, Mutex};
use tapesched_library::mhvtl::parse::{parse_lsscsi, parse_mt_status, parse_mtx_status};
use tapesched_library::mhvtl::{MhvtlLibrary, Runner};
use tapesched_library::{DriveState, Element, Library, LibraryError};

fn recorded(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compat/mhvtl/recorded").join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn lsscsi_recording() {
    let devices = parse_lsscsi(&recorded("lsscsi-g.txt")).unwrap();
    assert_eq!(devices.len(), 9);
    let changer = &devices[1];
    assert_eq!(
        (changer.kind.as_str(), changer.vendor.as_str(), changer.model.as_str()),
        ("mediumx", "IBM", "03584L32")
    );
    assert_eq!((changer.host, changer.channel, changer.target, changer.lun), (2, 0, 0, 0));
    assert_eq!((changer.device.as_deref(), changer.sg.as_deref()), (Some("/dev/sch0"), Some("/dev/sg1")));
    assert_eq!(devices[0].model, "QEMU HARDDISK", "models with spaces");
    assert_eq!(devices.iter().filter(|d| d.kind == "tape").count(), 6);
    assert_eq!(devices[2].device.as_deref(), Some("/dev/st0"));
}

#[test]
fn mtx_status_recording() {
    let s = parse_mtx_status(&recorded("mtx-status.txt")).unwrap();
    assert_eq!(s.device, "/dev/sg1");
    assert_eq!((s.drives.len(), s.slots.len(), s.storage_count()), (6, 22, 20));
    let loaded: Vec<_> = s.drives.iter().filter(|d| d.full).collect();
    assert_eq!(loaded.len(), 1);
    assert_eq!((loaded[0].index, loaded[0].source, loaded[0].barcode.as_deref()), (1, Some(3), Some("V00103L9")));
    assert_eq!(s.slots.iter().filter(|x| x.full).count(), 17);
    assert_eq!(s.slots[17].barcode.as_deref(), Some("CLN101L9"));
    assert!(!s.slots[2].full);
    let ie: Vec<_> = s.slots.iter().filter(|x| x.import_export).collect();
    assert_eq!((ie.len(), ie[0].index, ie[0].full), (2, 21, false));
    assert_eq!(ie[1].barcode.as_deref(), Some("V00117L9"));
}

#[test]
fn mt_status_recordings() {
    let bot = parse_mt_status(&recorded("mt-status-loaded-bot.txt")).unwrap();
    assert_eq!((bot.file_number, bot.block_number, bot.partition), (Some(0), Some(0), 0));
    assert_eq!((bot.density_code, bot.density.as_str(), bot.status_bits), (0x5e, "LTO-8", 0x4101_0000));
    assert!(bot.online() && bot.flag("BOT"));
    let file3 = parse_mt_status(&recorded("mt-status-loaded-file3.txt")).unwrap();
    assert_eq!(file3.file_number, Some(3));
    assert!(file3.online() && file3.flag("EOF") && !file3.flag("BOT"));
    let empty = parse_mt_status(&recorded("mt-status-empty.txt")).unwrap();
    assert_eq!((empty.file_number, empty.block_number, empty.density.as_str()), (None, None, "default"));
    assert!(!empty.online() && empty.flag("DR_OPEN"));
    let e = parse_mt_status("/dev/nst0: No medium found\n").unwrap_err();
    assert_eq!(e.to_string(), "mt status:1: unexpected line `/dev/nst0: No medium found`");
}

/// Answers commands from a script (`program args` -> stdout; anything else fails) and records them.
#[derive(Default)]
struct Scripted {
    answers: HashMap<String, String>,
    calls: Mutex<Vec<String>>,
    no_lsscsi: bool,
}

impl Scripted {
    fn answer(mut self, command: &str, stdout: &str) -> Self {
        self.answers.insert(command.to_string(), stdout.to_string());
        self
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Runner for Scripted {
    fn run(&self, program: &str, args: &[String]) -> std::io::Result<Output> {
        if self.no_lsscsi && program == "lsscsi" {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory"));
        }
        let line = format!("{program} {}", args.join(" "));
        self.calls.lock().unwrap().push(line.clone());
        let (status, stdout, stderr) = match self.answers.get(&line) {
            Some(out) => (0, out.clone(), String::new()),
            None => (1 << 8, String::new(), format!("{program}: not scripted")),
        };
        Ok(Output { status: ExitStatus::from_raw(status), stdout: stdout.into_bytes(), stderr: stderr.into_bytes() })
    }
}

fn library(script: Scripted) -> (MhvtlLibrary, Arc<Scripted>) {
    let script = Arc::new(script.answer("lsscsi -g", &recorded("lsscsi-g.txt")));
    (MhvtlLibrary::discover_with(script.clone()).unwrap(), script)
}

#[test]
fn discovery_takes_the_changer_and_the_drives_beside_it() {
    let (lib, _) = library(Scripted::default());
    assert_eq!(lib.changer(), "/dev/sg1");
    let names: Vec<&str> = lib.drives().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["nst0", "nst1", "nst2", "nst3", "nst4", "nst5"]);
    assert_eq!((lib.drives()[2].device.as_str(), lib.drives()[2].ordinal), ("/dev/nst2", 2));
    assert_eq!(lib.drives()[0].product, "ULT3580-TD9");
}

#[tokio::test]
async fn inventory_mount_and_dismount_run_mtx_and_mt() {
    let status = recorded("mtx-status.txt");
    let script = Scripted::default()
        .answer("mtx -f /dev/sg1 status", &status)
        .answer("mtx -f /dev/sg1 load 4 2", "Loading media from Storage Element 4 into drive 2...done\n")
        .answer("mt -f /dev/nst2 status", &recorded("mt-status-loaded-bot.txt"))
        .answer("mt -f /dev/nst1 status", &recorded("mt-status-loaded-file3.txt"))
        .answer("mt -f /dev/nst1 offline", "")
        .answer("mtx -f /dev/sg1 unload 3 1", "Unloading drive 1 into Storage Element 3...done\n")
        .answer("mtx -f /dev/sg1 transfer 22 3", "");
    let (lib, script) = library(script);

    let inv = lib.inventory().await.unwrap();
    assert_eq!(inv.slots.len(), 22);
    assert_eq!(inv.locate("V00103L9"), Some(Element::Drive("nst1".into())));
    assert_eq!(inv.locate("V00117L9"), Some(Element::ImportExport(2)));
    assert_eq!(inv.drives[1].source_slot, Some(3));

    lib.mount("V00104L9", "nst2").await.unwrap();
    assert!(script.calls().contains(&"mtx -f /dev/sg1 load 4 2".to_string()), "{:?}", script.calls());

    let st = lib.status("nst1").await.unwrap();
    assert_eq!((st.state, st.barcode.as_deref(), st.fseq), (DriveState::Ready, Some("V00103L9"), Some(4)));
    lib.dismount("nst1").await.unwrap();
    let calls = script.calls();
    let tail: Vec<&str> = calls[calls.len() - 2..].iter().map(String::as_str).collect();
    assert_eq!(tail, ["mtx -f /dev/sg1 status", "mtx -f /dev/sg1 unload 3 1"]);
    assert!(calls.contains(&"mt -f /dev/nst1 offline".to_string()));

    lib.move_cartridge(Element::ImportExport(2), Element::Slot(3)).await.unwrap();
    assert_eq!(script.calls().last().unwrap(), "mtx -f /dev/sg1 transfer 22 3");
}

#[tokio::test]
async fn erase_rewinds_and_erases_the_whole_tape() {
    let script = Scripted::default().answer("mt -f /dev/nst1 rewind", "").answer("mt -f /dev/nst1 erase", "");
    let (lib, script) = library(script);
    lib.erase("nst1").await.unwrap();
    let calls = script.calls();
    assert_eq!(calls[calls.len() - 3..], ["mt -f /dev/nst1 rewind", "mt -f /dev/nst1 erase", "mt -f /dev/nst1 rewind"]);
    // A drive that refuses (no cartridge, write-protected) fails the erase with the command named.
    let e = lib.erase("nst2").await.unwrap_err();
    assert_eq!(e.to_string(), "`mt -f /dev/nst2 rewind` failed (exit status: 1): mt: not scripted");
}

#[tokio::test]
async fn failing_commands_and_unknown_names_are_reported() {
    let script = Scripted::default().answer("mtx -f /dev/sg1 status", &recorded("mtx-status.txt"));
    let (lib, _) = library(script);
    let e = lib.move_cartridge(Element::Slot(1), Element::Drive("nst0".into())).await.unwrap_err();
    assert_eq!(e.to_string(), "`mtx -f /dev/sg1 load 1 0` failed (exit status: 1): mtx: not scripted");
    let e = lib.move_cartridge(Element::Slot(21), Element::Drive("nst0".into())).await.unwrap_err();
    assert_eq!(e.to_string(), "no slot 21 in the library");
    let e = lib.status("nst9").await.unwrap_err();
    assert_eq!(e.to_string(), "unknown drive nst9");
}

#[test]
fn without_lsscsi_or_a_changer_mhvtl_is_not_found() {
    let script = Arc::new(Scripted { no_lsscsi: true, ..Default::default() });
    let e = MhvtlLibrary::discover_with(script).unwrap_err().to_string();
    assert!(e.starts_with("mhVTL not found: `lsscsi` is not installed"), "{e}");
    assert!(e.contains("looked for a SCSI medium changer (a `mediumx` line"), "{e}");
    assert!(e.contains("mhvtl kernel module"), "{e}");

    let disks = "[0:0:0:0]    disk    ATA      QEMU HARDDISK    2.5+  /dev/sda   /dev/sg0 \n";
    let script = Arc::new(Scripted::default().answer("lsscsi -g", disks));
    let e = MhvtlLibrary::discover_with(script).unwrap_err().to_string();
    assert!(e.starts_with("mhVTL not found: no medium changer among the 1 SCSI devices"), "{e}");
}

#[test]
fn this_host_has_no_mhvtl() {
    match MhvtlLibrary::discover() {
        Err(LibraryError::MhvtlNotFound(why)) => assert!(why.contains("mediumx"), "{why}"),
        Err(other) => panic!("expected MhvtlNotFound, got {other}"),
        // A host with mhVTL: nothing to check here.
        Ok(lib) => eprintln!("mhVTL found on this host: changer {}", lib.changer()),
    }
}

#[tokio::test]
async fn files_on_tape_spaces_to_the_end_of_data_and_reads_the_file_number() {
    let script = Scripted::default()
        .answer("mt -f /dev/nst1 eod", "")
        .answer("mt -f /dev/nst1 status", &recorded("mt-status-loaded-file3.txt"))
        .answer("mt -f /dev/nst1 tell", "At block 7340.\n");
    let (lib, script) = library(script);
    assert_eq!(lib.files_on_tape("nst1").await.unwrap(), 3);
    let calls = script.calls();
    assert_eq!(calls[calls.len() - 3..], ["mt -f /dev/nst1 eod", "mt -f /dev/nst1 status", "mt -f /dev/nst1 tell"]);
    // A drive without a cartridge cannot space: the command is named.
    let e = lib.files_on_tape("nst2").await.unwrap_err();
    assert_eq!(e.to_string(), "`mt -f /dev/nst2 eod` failed (exit status: 1): mt: not scripted");
}

/// Without `lsscsi`, the library is found from sysfs's SCSI devices, as lsscsi itself reads
/// them: a fake `/sys/bus/scsi/devices` with a disk, a changer and three drives (one at target
/// 10, which sorts after target 2 as an address, not as text).
#[test]
fn without_lsscsi_the_library_is_found_from_sysfs() {
    let root = std::env::temp_dir().join(format!("tapesched-sysfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let device = |addr: &str, kind: u8, model: &str, nodes: &[(&str, &str)]| {
        let dir = root.join(addr);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("type"), format!("{kind}\n")).unwrap();
        std::fs::write(dir.join("vendor"), "IBM     \n").unwrap();
        std::fs::write(dir.join("model"), format!("{model}\n")).unwrap();
        std::fs::write(dir.join("rev"), "0107\n").unwrap();
        for (sub, name) in nodes {
            std::fs::create_dir_all(dir.join(sub).join(name)).unwrap();
        }
    };
    device("0:0:0:0", 0, "QEMU HARDDISK", &[("scsi_generic", "sg0")]);
    device("3:0:0:0", 8, "03584L32", &[("scsi_changer", "sch0"), ("scsi_generic", "sg5")]);
    for (addr, st, sg) in [("3:0:10:0", "2", "sg8"), ("3:0:1:0", "0", "sg6"), ("3:0:2:0", "1", "sg7")] {
        let nodes = [
            ("scsi_tape", format!("st{st}")),
            ("scsi_tape", format!("nst{st}")),
            ("scsi_tape", format!("st{st}a")),
            ("scsi_generic", sg.to_string()),
        ];
        let nodes: Vec<(&str, &str)> = nodes.iter().map(|(a, b)| (*a, b.as_str())).collect();
        device(addr, 1, "ULT3580-TD9", &nodes);
    }
    let script = Arc::new(Scripted { no_lsscsi: true, ..Default::default() });
    let lib = MhvtlLibrary::discover_in(script, &root).unwrap();
    assert_eq!(lib.changer(), "/dev/sg5");
    let drives: Vec<(&str, u32, &str)> =
        lib.drives().iter().map(|d| (d.name.as_str(), d.ordinal, d.product.as_str())).collect();
    assert_eq!(drives, vec![("nst0", 0, "ULT3580-TD9"), ("nst1", 1, "ULT3580-TD9"), ("nst2", 2, "ULT3580-TD9")]);

    // Only a disk: not found, saying where it looked.
    std::fs::remove_dir_all(root.join("3:0:0:0")).unwrap();
    let script = Arc::new(Scripted { no_lsscsi: true, ..Default::default() });
    let e = MhvtlLibrary::discover_in(script, &root).unwrap_err().to_string();
    assert!(e.contains("shows no medium changer with an sg device among 4 SCSI devices"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}
