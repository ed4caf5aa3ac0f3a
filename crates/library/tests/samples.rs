//! The mhVTL samples of `compat/mhvtl/`: parsed, built into simulated libraries, and printed back
//! in `mtx status` format next to the recorded output.

use std::path::PathBuf;
use std::sync::Arc;
use tapesched_library::config::{DeviceConf, LibraryContents};
use tapesched_library::media::{drive_generation, Media};
use tapesched_library::mhvtl::parse::parse_mtx_status;
use tapesched_library::sim::{SimClock, SimLibrary};
use tapesched_library::{Element, Library};

fn compat(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compat/mhvtl").join(rel)
}

#[test]
fn lto9_sample_parses() {
    let conf = DeviceConf::read(&compat("lto9/device.conf")).unwrap();
    assert_eq!(conf.version, Some(5));
    assert_eq!(conf.libraries.len(), 1);
    let lib = conf.library(10).unwrap();
    assert_eq!((lib.vendor.as_str(), lib.product.as_str(), lib.serial.as_str()), ("IBM", "03584L32", "LIB10"));
    let drives = conf.drives_of(10);
    assert_eq!(drives.len(), 6);
    assert!(drives.iter().all(|d| drive_generation(&d.product) == Some(9)));
    let serials: Vec<&str> = drives.iter().map(|d| d.serial.as_str()).collect();
    assert_eq!(serials, ["ULT11", "ULT12", "ULT13", "ULT14", "ULT15", "ULT16"]);
    assert!(drives[0].attributes.contains(&("Compression type".into(), "lzo".into())));

    let c = LibraryContents::read(&compat("lto9/library_contents.10")).unwrap();
    assert_eq!((c.version, c.drives.len(), c.pickers, c.maps.len(), c.slots.len()), (Some(2), 6, 1, 2, 20));
    let barcodes: Vec<&str> = c.barcodes().collect();
    assert_eq!(barcodes.len(), 17);
    let media: Vec<Media> = barcodes.iter().map(|b| Media::from_barcode(b)).collect();
    assert_eq!(media.iter().filter(|m| **m == Media::Lto(9)).count(), 16);
    assert_eq!(media.iter().filter(|m| **m == Media::Cleaning).count(), 1);
    assert_eq!(c.slots.iter().filter(|s| s.is_none()).count(), 3);
}

#[test]
fn mixed_sample_parses() {
    let conf = DeviceConf::read(&compat("mixed/device.conf")).unwrap();
    let gens: Vec<Option<u8>> = conf.drives_of(20).iter().map(|d| drive_generation(&d.product)).collect();
    assert_eq!(gens, [Some(8), Some(8), Some(9), Some(9)]);
    let c = LibraryContents::read(&compat("mixed/library_contents.20")).unwrap();
    assert_eq!((c.drives.len(), c.maps.len(), c.slots.len()), (4, 2, 18));
    let media: Vec<Media> = c.barcodes().map(Media::from_barcode).collect();
    assert_eq!(media.len(), 16);
    assert_eq!(media.iter().filter(|m| **m == Media::Lto(8)).count(), 8);
    assert_eq!(media.iter().filter(|m| **m == Media::Lto(9)).count(), 7);
    assert_eq!(c.maps[0].as_deref(), Some("V00307L9"));
}

#[test]
fn the_files_in_the_wrong_parser_are_refused() {
    let text = std::fs::read_to_string(compat("lto9/library_contents.10")).unwrap();
    let e = DeviceConf::parse(&text, "library_contents.10").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("library_contents"), "{e}");
    let text = std::fs::read_to_string(compat("mixed/device.conf")).unwrap();
    let e = LibraryContents::parse(&text, "device.conf").unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("looks like a device.conf"), "{e}");
}

#[test]
fn a_sample_with_an_unknown_key_names_its_line() {
    let text = std::fs::read_to_string(compat("lto9/device.conf")).unwrap();
    let line = text.lines().position(|l| l.contains("Unit serial number: ULT13")).unwrap() + 1;
    let text = text.replace(" Unit serial number: ULT13", " Serial: ULT13");
    let e = DeviceConf::parse(&text, "device.conf").unwrap_err();
    assert_eq!(e.to_string(), format!("device.conf:{line}: unknown key `Serial` in a Drive: record"));
}

#[test]
fn the_simulator_refuses_drives_it_cannot_time_and_mismatched_contents() {
    let text = std::fs::read_to_string(compat("mixed/device.conf")).unwrap();
    let line = text.lines().position(|l| l.contains("Drive: 21")).unwrap() + 1;
    let conf = DeviceConf::parse(&text.replacen("ULT3580-TD8", "ULT3580-TD6", 2), "device.conf").unwrap();
    let contents = LibraryContents::read(&compat("mixed/library_contents.20")).unwrap();
    let clock = Arc::new(SimClock::new(0));
    let e = SimLibrary::new(&conf, &contents, 20, clock.clone()).unwrap_err();
    assert_eq!(e.line, line, "the first of the two drives: {e}");
    assert!(e.message.contains("no timing profile"), "{e}");
    let conf = DeviceConf::read(&compat("mixed/device.conf")).unwrap();
    let e = SimLibrary::new(&conf, &contents, 10, clock.clone()).unwrap_err();
    assert!(e.message.contains("no `Library: 10` record"), "{e}");
    let swapped = LibraryContents::parse("Drive 1: ULT22\nSlot 1:\n", "lc").unwrap();
    let e = SimLibrary::new(&conf, &swapped, 20, clock).unwrap_err();
    assert!(e.message.contains("device.conf puts drive ULT21 in that slot"), "{e}");
}

#[tokio::test]
async fn both_samples_build_simulated_libraries() {
    let clock = Arc::new(SimClock::new(0));
    let lto9 = SimLibrary::from_dir(&compat("lto9"), 10, clock.clone()).unwrap();
    let inv = lto9.inventory().await.unwrap();
    assert_eq!(inv.drives.len(), 6);
    assert_eq!(inv.slots.len(), 22);
    assert_eq!(inv.barcodes().len(), 17);
    assert_eq!(inv.locate("CLN101L9"), Some(Element::Slot(18)));
    assert_eq!(lto9.identity(), ("LIB10", "03584L32"));

    let mixed = SimLibrary::from_dir(&compat("mixed"), 20, clock).unwrap();
    let inv = mixed.inventory().await.unwrap();
    let products: Vec<&str> = inv.drives.iter().map(|d| d.product.as_str()).collect();
    assert_eq!(products, ["ULT3580-TD8", "ULT3580-TD8", "ULT3580-TD9", "ULT3580-TD9"]);
    assert_eq!(inv.locate("V00307L9"), Some(Element::ImportExport(1)));
    assert_eq!(mixed.drive_profile("ULT21").unwrap().generation, 8);
    assert_eq!(mixed.cartridge("V00301L9").unwrap().1, 18_000_000_000_000);
}

#[tokio::test]
async fn the_simulator_prints_mtx_status_like_the_recording() {
    let clock = Arc::new(SimClock::new(0));
    let lib = SimLibrary::from_dir(&compat("lto9"), 10, clock).unwrap();
    lib.mount("V00103L9", "ULT12").await.unwrap();
    let printed = lib.mtx_status("/dev/sg1");
    // The recording also has V00117L9 in the second import/export slot.
    let recorded = std::fs::read_to_string(compat("recorded/mtx-status.txt")).unwrap();
    let recorded = recorded.replace("IMPORT/EXPORT:Full :VolumeTag=V00117L9", "IMPORT/EXPORT:Empty");
    assert_eq!(printed, recorded);
    let parsed = parse_mtx_status(&printed).unwrap();
    assert_eq!(parsed.drives[1].source, Some(3));
}
