//! Parsers for mhVTL's configuration files: `device.conf` ([`DeviceConf`]) and
//! `library_contents.<id>` ([`LibraryContents`]), as mhVTL's `device.conf(5)` and
//! `library_contents(5)` describe them.
//!
//! Both parsers are strict: an unknown key, a malformed header or number, a duplicate id, slot or
//! barcode stops them with a [`ConfigError`] naming the file and the line. Each recognises the
//! other file's lines, so handing one file to the wrong parser says so.

use crate::error::ConfigError;
use std::collections::HashSet;

/// A SCSI address of a `device.conf` record (`CHANNEL: 00 TARGET: 01 LUN: 00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScsiAddress {
    /// Channel.
    pub channel: u32,
    /// Target.
    pub target: u32,
    /// Logical unit.
    pub lun: u32,
}

/// A `Library:` record of `device.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LibraryRecord {
    /// The library id (`library_contents.<id>` holds its contents).
    pub id: u32,
    /// Line of the `Library:` header.
    pub line: usize,
    /// SCSI address.
    pub address: ScsiAddress,
    /// `Vendor identification`.
    pub vendor: String,
    /// `Product identification`.
    pub product: String,
    /// `Unit serial number`.
    pub serial: String,
    /// The other attributes, with their key as written (`Home directory`, `PERSIST`...).
    pub attributes: Vec<(String, String)>,
}

/// A `Drive:` record of `device.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DriveRecord {
    /// The drive's device id.
    pub id: u32,
    /// Line of the `Drive:` header.
    pub line: usize,
    /// SCSI address.
    pub address: ScsiAddress,
    /// The library it is in (`Library ID: <lib> Slot: <n>`), if any.
    pub library_id: Option<u32>,
    /// Its drive slot in that library (1-based).
    pub slot: Option<u32>,
    /// `Vendor identification`.
    pub vendor: String,
    /// `Product identification` (`ULT3580-TD9`).
    pub product: String,
    /// `Unit serial number`: the drive's name in the simulator.
    pub serial: String,
    /// The other attributes, with their key as written (`Compression`, `Backoff`...).
    pub attributes: Vec<(String, String)>,
}

/// A parsed `device.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceConf {
    /// The name of the file it was parsed from, for errors.
    pub source: String,
    /// The `VERSION:` line's value.
    pub version: Option<u32>,
    /// `Library:` records in file order.
    pub libraries: Vec<LibraryRecord>,
    /// `Drive:` records in file order.
    pub drives: Vec<DriveRecord>,
}

const COMMON_KEYS: &[&str] = &[
    "Vendor identification",
    "Product identification",
    "Product revision level",
    "Unit serial number",
    "NAA",
    "Backoff",
    "fifo",
];
const LIBRARY_KEYS: &[&str] = &["Home directory", "PERSIST", "movecommand", "commandtimeout"];
const DRIVE_KEYS: &[&str] = &["Compression", "Compression type"];

enum Current {
    None,
    Library(usize),
    Drive(usize),
}

fn looks_like_contents(line: &str) -> bool {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("Drive" | "Slot" | "MAP" | "Picker"), Some(n)) => n.trim_end_matches(':').parse::<u32>().is_ok(),
        _ => false,
    }
}

fn number(source: &str, line: usize, what: &str, text: &str) -> Result<u32, ConfigError> {
    text.parse::<u32>()
        .map_err(|_| ConfigError::new(source, line, format!("{what}: expected a number, found `{text}`")))
}

/// Parses `Library: <id> CHANNEL: <c> TARGET: <t> LUN: <l>` (or `Drive: ...`).
fn header(source: &str, n: usize, line: &str) -> Result<(u32, ScsiAddress), ConfigError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let kind = words[0];
    let expected = format!("expected `{kind} <id> CHANNEL: <c> TARGET: <t> LUN: <l>`");
    if words.len() != 8 || words[2] != "CHANNEL:" || words[4] != "TARGET:" || words[6] != "LUN:" {
        return Err(ConfigError::new(source, n, format!("{expected}, found `{line}`")));
    }
    let id = number(source, n, kind.trim_end_matches(':'), words[1])?;
    let address = ScsiAddress {
        channel: number(source, n, "CHANNEL", words[3])?,
        target: number(source, n, "TARGET", words[5])?,
        lun: number(source, n, "LUN", words[7])?,
    };
    Ok((id, address))
}

impl DeviceConf {
    /// Parses the text of a `device.conf`; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ConfigError> {
        let mut conf = DeviceConf { source: source.to_string(), ..Default::default() };
        let mut current = Current::None;
        let (mut library_ids, mut drive_ids) = (HashSet::new(), HashSet::new());
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indented = raw.starts_with(' ') || raw.starts_with('\t');
            if !indented {
                if let Some(v) = trimmed.strip_prefix("VERSION:") {
                    let v = number(source, n, "VERSION", v.trim())?;
                    if v < 3 {
                        return Err(ConfigError::new(
                            source,
                            n,
                            format!(
                                "VERSION: {v} is not a device.conf version (3 to 5); \
                                 VERSION: 2 starts a library_contents file"
                            ),
                        ));
                    }
                    conf.version = Some(v);
                } else if trimmed.starts_with("Library:") {
                    let (id, address) = header(source, n, trimmed)?;
                    if !library_ids.insert(id) {
                        return Err(ConfigError::new(source, n, format!("library {id} defined twice")));
                    }
                    conf.libraries.push(LibraryRecord { id, line: n, address, ..Default::default() });
                    current = Current::Library(conf.libraries.len() - 1);
                } else if trimmed.starts_with("Drive:") {
                    let (id, address) = header(source, n, trimmed)?;
                    if !drive_ids.insert(id) {
                        return Err(ConfigError::new(source, n, format!("drive {id} defined twice")));
                    }
                    conf.drives.push(DriveRecord { id, line: n, address, ..Default::default() });
                    current = Current::Drive(conf.drives.len() - 1);
                } else if looks_like_contents(trimmed) {
                    return Err(ConfigError::new(
                        source,
                        n,
                        format!(
                            "`{trimmed}` is a library_contents line: this looks like a \
                             library_contents file, not a device.conf"
                        ),
                    ));
                } else {
                    return Err(ConfigError::new(
                        source,
                        n,
                        format!("expected `VERSION:`, `Library:` or `Drive:`, found `{trimmed}`"),
                    ));
                }
                continue;
            }
            match current {
                Current::None => {
                    return Err(ConfigError::new(
                        source,
                        n,
                        format!("attribute `{trimmed}` outside a Library: or Drive: record"),
                    ))
                }
                Current::Library(k) => library_attribute(&mut conf.libraries[k], source, n, trimmed)?,
                Current::Drive(k) => drive_attribute(&mut conf.drives[k], source, n, trimmed)?,
            }
        }
        if conf.libraries.is_empty() && conf.drives.is_empty() {
            return Err(ConfigError::new(source, 0, "no Library: or Drive: record"));
        }
        Ok(conf)
    }

    /// Reads and parses a `device.conf` file.
    pub fn read(path: &std::path::Path) -> Result<Self, ConfigError> {
        let (text, name) = read_text(path)?;
        DeviceConf::parse(&text, &name)
    }

    /// The library with that id.
    pub fn library(&self, id: u32) -> Option<&LibraryRecord> {
        self.libraries.iter().find(|l| l.id == id)
    }

    /// The drives bound to library `id`, in drive-slot order.
    pub fn drives_of(&self, id: u32) -> Vec<&DriveRecord> {
        let mut drives: Vec<&DriveRecord> = self.drives.iter().filter(|d| d.library_id == Some(id)).collect();
        drives.sort_by_key(|d| d.slot);
        drives
    }
}

/// Splits `Key: value` and checks the key against the allowed ones (case-insensitively).
fn key_value<'a>(
    source: &str,
    n: usize,
    line: &'a str,
    record: &str,
    allowed: &[&[&'static str]],
) -> Result<(&'static str, &'a str), ConfigError> {
    let Some((key, value)) = line.split_once(':') else {
        return Err(ConfigError::new(source, n, format!("expected `Key: value`, found `{line}`")));
    };
    let key = key.trim();
    let known = allowed.iter().flat_map(|k| k.iter()).find(|k| k.eq_ignore_ascii_case(key));
    match known {
        Some(k) => Ok((k, value.trim())),
        None => Err(ConfigError::new(source, n, format!("unknown key `{key}` in a {record} record"))),
    }
}

fn library_attribute(rec: &mut LibraryRecord, source: &str, n: usize, line: &str) -> Result<(), ConfigError> {
    let (key, value) = key_value(source, n, line, "Library:", &[COMMON_KEYS, LIBRARY_KEYS])?;
    match key {
        "Vendor identification" => rec.vendor = value.to_string(),
        "Product identification" => rec.product = value.to_string(),
        "Unit serial number" => rec.serial = value.to_string(),
        _ => rec.attributes.push((key.to_string(), value.to_string())),
    }
    Ok(())
}

fn drive_attribute(rec: &mut DriveRecord, source: &str, n: usize, line: &str) -> Result<(), ConfigError> {
    if line.starts_with("Library ID:") {
        // `Library ID: <lib> Slot: <n>`
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() != 5 || words[3] != "Slot:" {
            return Err(ConfigError::new(source, n, format!("expected `Library ID: <id> Slot: <n>`, found `{line}`")));
        }
        rec.library_id = Some(number(source, n, "Library ID", words[2])?);
        let slot = number(source, n, "Slot", words[4])?;
        if slot == 0 {
            return Err(ConfigError::new(source, n, "drive slots are numbered from 1"));
        }
        rec.slot = Some(slot);
        return Ok(());
    }
    let (key, value) = key_value(source, n, line, "Drive:", &[COMMON_KEYS, DRIVE_KEYS])?;
    match key {
        "Vendor identification" => rec.vendor = value.to_string(),
        "Product identification" => rec.product = value.to_string(),
        "Unit serial number" => rec.serial = value.to_string(),
        _ => rec.attributes.push((key.to_string(), value.to_string())),
    }
    Ok(())
}

/// A parsed `library_contents.<id>`: what is in each drive slot, picker, MAP and storage slot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LibraryContents {
    /// The name of the file it was parsed from, for errors.
    pub source: String,
    /// The `VERSION:` line's value.
    pub version: Option<u32>,
    /// Drive slots: index `n - 1` holds `Drive n:`'s optional drive serial.
    pub drives: Vec<Option<String>>,
    /// Number of pickers (robot arms).
    pub pickers: u32,
    /// Import/export slots: index `n - 1` holds `MAP n:`'s optional barcode.
    pub maps: Vec<Option<String>>,
    /// Storage slots: index `n - 1` holds `Slot n:`'s optional barcode; numbers missing from the
    /// file are empty slots, as in mhVTL.
    pub slots: Vec<Option<String>>,
}

impl LibraryContents {
    /// Parses the text of a `library_contents.<id>`; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ConfigError> {
        let mut c = LibraryContents { source: source.to_string(), ..Default::default() };
        let mut seen = HashSet::new();
        let mut barcodes = HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if raw.starts_with(' ') || raw.starts_with('\t') || line.starts_with("Library:") {
                return Err(ConfigError::new(
                    source,
                    n,
                    format!("`{line}` is a device.conf line: this looks like a device.conf file, not a library_contents file"),
                ));
            }
            let Some((head, value)) = line.split_once(':') else {
                return Err(ConfigError::new(source, n, format!("expected `<Kind> <n>: [value]`, found `{line}`")));
            };
            let value = value.trim();
            if head == "VERSION" {
                c.version = Some(number(source, n, "VERSION", value)?);
                continue;
            }
            let mut words = head.split_whitespace();
            let (Some(kind), Some(index), None) = (words.next(), words.next(), words.next()) else {
                if head == "Drive" {
                    return Err(ConfigError::new(
                        source,
                        n,
                        format!("`{line}` is a device.conf header: this looks like a device.conf file, not a library_contents file"),
                    ));
                }
                return Err(ConfigError::new(source, n, format!("expected `<Kind> <n>: [value]`, found `{line}`")));
            };
            if !["Drive", "Picker", "MAP", "Slot"].contains(&kind) {
                return Err(ConfigError::new(
                    source,
                    n,
                    format!("unknown key `{kind}` (expected VERSION, Drive, Picker, MAP or Slot)"),
                ));
            }
            let index = number(source, n, kind, index)?;
            if index == 0 {
                return Err(ConfigError::new(source, n, format!("{kind} numbers start at 1")));
            }
            if !seen.insert((kind, index)) {
                return Err(ConfigError::new(source, n, format!("{kind} {index} listed twice")));
            }
            let value = (!value.is_empty()).then(|| value.to_string());
            if let Some(v) = &value {
                if kind != "Drive" {
                    if kind == "Picker" {
                        return Err(ConfigError::new(source, n, format!("a picker holds no cartridge, found `{v}`")));
                    }
                    if v.len() > 12 || v.contains(char::is_whitespace) {
                        return Err(ConfigError::new(
                            source,
                            n,
                            format!("`{v}` is not a barcode (1 to 12 characters, no spaces)"),
                        ));
                    }
                    if !barcodes.insert(v.clone()) {
                        return Err(ConfigError::new(source, n, format!("barcode {v} is listed twice")));
                    }
                }
            }
            let list = match kind {
                "Drive" => &mut c.drives,
                "MAP" => &mut c.maps,
                "Slot" => &mut c.slots,
                _ => {
                    c.pickers = c.pickers.max(index);
                    continue;
                }
            };
            let k = index as usize;
            if list.len() < k {
                list.resize(k, None);
            }
            list[k - 1] = value;
        }
        if c.slots.is_empty() && c.drives.is_empty() {
            return Err(ConfigError::new(source, 0, "no Drive or Slot line"));
        }
        Ok(c)
    }

    /// Reads and parses a `library_contents.<id>` file.
    pub fn read(path: &std::path::Path) -> Result<Self, ConfigError> {
        let (text, name) = read_text(path)?;
        LibraryContents::parse(&text, &name)
    }

    /// Every barcode in slots and MAP slots.
    pub fn barcodes(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().chain(self.maps.iter()).filter_map(|b| b.as_deref())
    }
}

/// A configuration file's text and its name for messages.
fn read_text(path: &std::path::Path) -> Result<(String, String), ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&name, 0, format!("cannot read: {e}")))?;
    Ok((text, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: &str = "VERSION: 5\n\nLibrary: 10 CHANNEL: 00 TARGET: 00 LUN: 00\n Vendor identification: IBM\n Product identification: 03584L32\n Unit serial number: LIB10\n\nDrive: 11 CHANNEL: 00 TARGET: 01 LUN: 00\n Library ID: 10 Slot: 01\n Product identification: ULT3580-TD9\n Unit serial number: ULT11\n";

    #[test]
    fn parses_a_small_device_conf() {
        let c = DeviceConf::parse(DEVICE, "device.conf").unwrap();
        assert_eq!(c.version, Some(5));
        assert_eq!(c.libraries[0].product, "03584L32");
        let d = &c.drives[0];
        assert_eq!((d.id, d.library_id, d.slot, d.serial.as_str()), (11, Some(10), Some(1), "ULT11"));
        assert_eq!(d.address.target, 1);
        assert_eq!(c.drives_of(10).len(), 1);
    }

    #[test]
    fn unknown_keys_are_reported_with_their_line() {
        let text = DEVICE.replace(" Unit serial number: ULT11", " Colour: blue");
        let e = DeviceConf::parse(&text, "device.conf").unwrap_err();
        assert_eq!(e.line, 11);
        assert_eq!(e.to_string(), "device.conf:11: unknown key `Colour` in a Drive: record");
        let e = LibraryContents::parse("Slot 1: A\nShelf 2: B\n", "lc").unwrap_err();
        assert_eq!(e.to_string(), "lc:2: unknown key `Shelf` (expected VERSION, Drive, Picker, MAP or Slot)");
    }

    #[test]
    fn malformed_headers_and_numbers_are_reported() {
        let e = DeviceConf::parse("Library: 10 CHANNEL: 00\n", "d").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("expected `Library: <id> CHANNEL"), "{e}");
        let e = DeviceConf::parse("Drive: x CHANNEL: 0 TARGET: 1 LUN: 0\n", "d").unwrap_err();
        assert!(e.message.contains("Drive: expected a number, found `x`"), "{e}");
        let e = LibraryContents::parse("Slot 1: A\nSlot 1: B\n", "lc").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "Slot 1 listed twice"));
        let e = LibraryContents::parse("Slot 1: A\nMAP 1: A\n", "lc").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "barcode A is listed twice"));
        let e = LibraryContents::parse("Slot 1: ABCDEFGHIJKLM\n", "lc").unwrap_err();
        assert!(e.message.contains("is not a barcode"), "{e}");
    }

    #[test]
    fn each_file_in_the_other_parser_says_so() {
        let e = DeviceConf::parse("VERSION: 2\nDrive 1: ULT11\n", "d").unwrap_err();
        assert!(e.message.contains("library_contents"), "{e}");
        let e = DeviceConf::parse("Drive 1: ULT11\nSlot 1: V00101L9\n", "d").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("looks like a library_contents file"), "{e}");
        let e = LibraryContents::parse(DEVICE, "lc").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("looks like a device.conf file"), "{e}");
    }

    #[test]
    fn missing_slot_numbers_are_empty_slots() {
        let c = LibraryContents::parse("Slot 1: A\nSlot 4: B\nMAP 2: C\nPicker 1:\n", "lc").unwrap();
        assert_eq!(c.slots, vec![Some("A".into()), None, None, Some("B".into())]);
        assert_eq!(c.maps, vec![None, Some("C".into())]);
        assert_eq!(c.pickers, 1);
        assert_eq!(c.barcodes().collect::<Vec<_>>(), ["A", "B", "C"]);
    }
}
