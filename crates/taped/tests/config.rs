//! `config check` on good and bad configurations: every error names the file and the line, key,
//! drive or cartridge it is about. No server is needed.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tapesched_taped::{check, Config, SetupError};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("taped-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn check_text(dir: &Path, text: &str) -> Result<String, String> {
    let path = dir.join("taped.toml");
    std::fs::write(&path, text).unwrap();
    check(&path).await.map_err(|e: SetupError| e.to_string())
}

const LTO9: &[&str] = &["ULT11", "ULT12"];

#[tokio::test]
async fn the_committed_example_is_good() {
    let line = check(&root().join("compat/taped/sim.toml")).await.expect("good");
    assert!(line.contains("6 drive(s)") && line.contains("16 tape(s)"), "{line}");
}

/// One file serves both daemons: taped accepts the `[maintenance]` section, and `config check`
/// checks it as the maintenance daemon reads it (a CA file that cannot be read, with its line).
#[tokio::test]
async fn the_maintenance_section_is_accepted_and_checked() {
    let d = scratch("maintenance");
    let good = "\n[maintenance]\nreport_batch = 100\n[maintenance.reports]\ninterval_ms = 5000\n";
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", LTO9, good);
    Config::parse(&text, &d.join("taped.toml")).expect("taped accepts [maintenance]");
    check_text(&d, &text).await.expect("good");
    let bad = "\n[maintenance]\ntls_ca_file = \"no-such-ca.pem\"\n";
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", LTO9, bad);
    let e = check_text(&d, &text).await.unwrap_err();
    let line = text.lines().count();
    assert!(e.contains(&format!("taped.toml:{line}: maintenance.tls_ca_file")) && e.contains("cannot read"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_good_configuration_passes() {
    let d = scratch("good");
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", LTO9, "");
    let line = check_text(&d, &text).await.unwrap();
    assert!(line.contains("2 drive(s) (ULT11, ULT12)"), "{line}");
    let c = Config::parse(&text, &d.join("taped.toml")).unwrap();
    assert_eq!((c.batch.max_files, c.batch.max_bytes), (4000, 80_000_000_000));
}

#[tokio::test]
async fn an_unknown_key_is_named_with_its_line() {
    let d = scratch("unknown");
    let text = config_text(
        "compat/mhvtl/lto9",
        10,
        "compat/taped/lto9.yml",
        LTO9,
        "\n[batch]\nmax_files = 10\nmax_byte = 5\n",
    );
    let line = text.lines().position(|l| l.starts_with("max_byte")).unwrap() + 1;
    let e = check_text(&d, &text).await.unwrap_err();
    assert!(e.contains(&format!("taped.toml:{line}:")), "{e}");
    assert!(e.contains("unknown field `max_byte`"), "{e}");
}

#[tokio::test]
async fn a_drive_missing_from_the_library_is_named_with_its_line() {
    let d = scratch("drive");
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11", "ULT99"], "");
    let line = text.lines().position(|l| l.contains("\"ULT99\"")).unwrap() + 1;
    let e = check_text(&d, &text).await.unwrap_err();
    assert!(e.contains(&format!("taped.toml:{line}: drive ULT99 is not in the library")), "{e}");
}

#[tokio::test]
async fn a_cartridge_the_catalogue_does_not_know_is_named() {
    let d = scratch("barcode");
    let catalogue = std::fs::read_to_string(root().join("compat/taped/lto9.yml")).unwrap();
    let without: String = catalogue.lines().filter(|l| !l.contains("V00116")).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("cat.yml"), without).unwrap();
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", LTO9, "")
        .replace(&root().join("compat/taped/lto9.yml").display().to_string(), &d.join("cat.yml").display().to_string());
    let e = check_text(&d, &text).await.unwrap_err();
    assert!(e.contains("cartridge V00116L9 of the library is not a tape the catalogue knows"), "{e}");
}

#[tokio::test]
async fn a_library_file_in_another_format_is_named_with_its_line() {
    let d = scratch("format");
    let lib = d.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(root().join("compat/mhvtl/lto9/library_contents.10"), lib.join("library_contents.10")).unwrap();
    std::fs::write(lib.join("device.conf"), "VERSION: 5\n\n{\"library\": 10, \"drives\": [\"ULT11\"]}\n").unwrap();
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", LTO9, "")
        .replace(&root().join("compat/mhvtl/lto9").display().to_string(), &lib.display().to_string());
    let e = check_text(&d, &text).await.unwrap_err();
    assert!(e.contains("device.conf:3"), "{e}");
}

#[tokio::test]
async fn shape_errors() {
    let d = scratch("shape");
    let base = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", LTO9, "");
    let e = check_text(&d, &base.replace("\"postgres\"", "\"mysql\"")).await.unwrap_err();
    assert!(e.contains("taped.toml:2: unknown backend \"mysql\""), "{e}");
    let e = check_text(&d, &format!("{base}\n[[drives]]\nname = \"ULT11\"\n")).await.unwrap_err();
    assert!(e.contains("drive ULT11 is listed twice"), "{e}");
    let e = check_text(&d, &format!("{base}\n[data]\nmode = \"files\"\n")).await.unwrap_err();
    assert!(e.contains("mode `files` needs `tape_dir`"), "{e}");
    let files = "\n[data]\nmode = \"files\"\ntape_dir = \"tapes\"\n";
    let workload = "\n[workload]\narchive_files = 1\nfile_size = 1000\nstorage_class = \"sc_pool_a\"\n";
    check_text(&d, &format!("{base}{files}")).await.expect("files mode alone is good");
    let e = check_text(&d, &format!("{base}{files}{workload}")).await.unwrap_err();
    assert!(e.contains("[workload] queues archives without source files"), "{e}");
    let e =
        check_text(&d, &base.replace("idle_ms = 60000\n", "idle_ms = 60000\nheartbeat_ms = 0\n")).await.unwrap_err();
    assert!(e.contains("heartbeat_ms must be positive"), "{e}");
    let e = check_text(&d, &base.replace("kind = \"sim\"", "kind = \"scsi\"")).await.unwrap_err();
    assert!(e.contains("taped.toml:8:") && e.contains("unknown variant `scsi`"), "{e}");
}
