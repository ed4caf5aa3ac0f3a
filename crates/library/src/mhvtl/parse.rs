//! Parsers for the output of the tools that drive a real (mhVTL) library: `lsscsi -g`
//! ([`parse_lsscsi`]), `mtx -f <changer> status` ([`parse_mtx_status`]), mt-st's
//! `mt -f <drive> status` ([`parse_mt_status`]) and `mt -f <drive> tell` ([`parse_mt_tell`]).
//! Errors name the command and the line.

use crate::error::ConfigError;

/// One line of `lsscsi -g`: `[H:C:T:L]  type  vendor  model  rev  device  sg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiDevice {
    /// SCSI host.
    pub host: u32,
    /// Channel.
    pub channel: u32,
    /// Target.
    pub target: u32,
    /// Logical unit.
    pub lun: u32,
    /// Peripheral type: `mediumx` (changer), `tape`, `disk`...
    pub kind: String,
    /// Vendor.
    pub vendor: String,
    /// Model (may contain spaces).
    pub model: String,
    /// Revision.
    pub revision: String,
    /// The primary device node (`/dev/st0`, `/dev/sch0`), `None` for `-`.
    pub device: Option<String>,
    /// The generic SCSI node (`/dev/sg1`), `None` for `-`.
    pub sg: Option<String>,
}

fn dash(s: &str) -> Option<String> {
    (s != "-").then(|| s.to_string())
}

/// Parses `lsscsi -g` output.
pub fn parse_lsscsi(text: &str) -> Result<Vec<ScsiDevice>, ConfigError> {
    const SRC: &str = "lsscsi -g";
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = || {
            ConfigError::new(
                SRC,
                n,
                format!("expected `[H:C:T:L] type vendor model rev device sg`, found `{}`", line.trim()),
            )
        };
        if words.len() < 7 {
            return Err(bad());
        }
        let hctl = words[0].strip_prefix('[').and_then(|w| w.strip_suffix(']')).ok_or_else(bad)?;
        let parts: Vec<u32> = hctl.split(':').map(|p| p.parse::<u32>()).collect::<Result<_, _>>().map_err(|_| bad())?;
        let [host, channel, target, lun] = parts[..] else { return Err(bad()) };
        let k = words.len();
        out.push(ScsiDevice {
            host,
            channel,
            target,
            lun,
            kind: words[1].to_string(),
            vendor: words[2].to_string(),
            model: words[3..k - 3].join(" "),
            revision: words[k - 3].to_string(),
            device: dash(words[k - 2]),
            sg: dash(words[k - 1]),
        });
    }
    Ok(out)
}

/// A data transfer element (drive) of `mtx status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtxDrive {
    /// Element index (0-based, mtx's drive number).
    pub index: u32,
    /// Whether a cartridge is in the drive.
    pub full: bool,
    /// Its volume tag, when the library read one.
    pub barcode: Option<String>,
    /// The storage element it came from (1-based, import/export slots counted after storage).
    pub source: Option<u32>,
}

/// A storage element of `mtx status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtxSlot {
    /// Element number (1-based; import/export elements are numbered after the storage ones).
    pub index: u32,
    /// Whether it is an import/export (mail) slot.
    pub import_export: bool,
    /// Whether a cartridge is in it.
    pub full: bool,
    /// Its volume tag, when the library read one.
    pub barcode: Option<String>,
}

/// Parsed `mtx -f <changer> status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtxStatus {
    /// The changer device of the header.
    pub device: String,
    /// Drives in element order.
    pub drives: Vec<MtxDrive>,
    /// Storage elements in element order, import/export ones last.
    pub slots: Vec<MtxSlot>,
}

impl MtxStatus {
    /// Number of storage elements that are not import/export slots.
    pub fn storage_count(&self) -> u32 {
        self.slots.iter().filter(|s| !s.import_export).count() as u32
    }
}

fn tag_after<'a>(rest: &'a str, key: &str) -> Option<&'a str> {
    let i = rest.find(key)?;
    let after = rest[i + key.len()..].trim_start();
    let after = after.strip_prefix('=')?.trim_start();
    after.split([':', ' ']).next().filter(|t| !t.is_empty())
}

/// Parses `mtx -f <changer> status` (format of mtx's `Status()`), checking the element counts
/// against the header.
pub fn parse_mtx_status(text: &str) -> Result<MtxStatus, ConfigError> {
    const SRC: &str = "mtx status";
    let mut header: Option<(String, u32, u32)> = None;
    let (mut drives, mut slots) = (Vec::new(), Vec::new());
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("Storage Changer ") {
            // `<dev>:<D> Drives, <S> Slots ( <IE> Import/Export )`
            let bad = || ConfigError::new(SRC, n, format!("malformed changer header `{line}`"));
            let (dev, counts) = rest.rsplit_once(':').ok_or_else(bad)?;
            let words: Vec<&str> = counts.split_whitespace().collect();
            if words.len() < 4 || words[1] != "Drives," || words[3] != "Slots" {
                return Err(bad());
            }
            let d = words[0].parse().map_err(|_| bad())?;
            let s = words[2].parse().map_err(|_| bad())?;
            header = Some((dev.to_string(), d, s));
        } else if let Some(rest) = line.strip_prefix("Data Transfer Element ") {
            let bad = || ConfigError::new(SRC, n, format!("malformed drive line `{line}`"));
            let (index, state) = rest.split_once(':').ok_or_else(bad)?;
            let index = index.trim().parse().map_err(|_| bad())?;
            let full = state.starts_with("Full");
            if !full && !state.starts_with("Empty") {
                return Err(bad());
            }
            let source = state
                .strip_prefix("Full (Storage Element ")
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok());
            let barcode = tag_after(state, "VolumeTag").filter(|_| full).map(str::to_string);
            drives.push(MtxDrive { index, full, barcode, source });
        } else if let Some(rest) = line.strip_prefix("Storage Element ") {
            let bad = || ConfigError::new(SRC, n, format!("malformed storage element line `{line}`"));
            let (head, state) = rest.split_once(':').ok_or_else(bad)?;
            let (index, import_export) = match head.strip_suffix(" IMPORT/EXPORT") {
                Some(i) => (i, true),
                None => (head, false),
            };
            let index = index.trim().parse().map_err(|_| bad())?;
            let full = state.starts_with("Full");
            if !full && !state.starts_with("Empty") {
                return Err(bad());
            }
            let barcode = tag_after(state, "VolumeTag").filter(|_| full).map(str::to_string);
            slots.push(MtxSlot { index, import_export, full, barcode });
        } else {
            return Err(ConfigError::new(SRC, n, format!("unexpected line `{line}`")));
        }
    }
    let (device, d, s) = header.ok_or_else(|| ConfigError::new(SRC, 0, "no `Storage Changer` header"))?;
    if drives.len() as u32 != d || slots.len() as u32 != s {
        return Err(ConfigError::new(
            SRC,
            0,
            format!(
                "the header announces {d} drives and {s} slots, the listing has {} and {}",
                drives.len(),
                slots.len()
            ),
        ));
    }
    Ok(MtxStatus { device, drives, slots })
}

/// Parsed mt-st `mt -f <drive> status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtStatus {
    /// The current file number (0-based), `None` when unknown (`-1`: no tape).
    pub file_number: Option<u64>,
    /// The block number inside the file, `None` when unknown.
    pub block_number: Option<u64>,
    /// The partition.
    pub partition: u32,
    /// Block size in bytes (0: variable).
    pub block_size: u64,
    /// Density code.
    pub density_code: u32,
    /// Density name as mt prints it (`LTO-8`, `default`).
    pub density: String,
    /// The general status bits.
    pub status_bits: u64,
    /// The flags named on the last line (`BOT`, `ONLINE`, `DR_OPEN`...).
    pub flags: Vec<String>,
}

impl MtStatus {
    /// Whether the drive has a tape loaded and ready (`ONLINE`).
    pub fn online(&self) -> bool {
        self.flag("ONLINE")
    }
    /// Whether a flag is on.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(key)?;
    let rest = &line[i + key.len()..];
    Some(rest.split([',', ' ']).next().unwrap_or("").trim_end_matches('.'))
}

fn signed(s: &str) -> Option<Option<u64>> {
    let v: i64 = s.parse().ok()?;
    Some((v >= 0).then_some(v as u64))
}

/// Parses mt-st's `mt -f <drive> status`.
pub fn parse_mt_status(text: &str) -> Result<MtStatus, ConfigError> {
    const SRC: &str = "mt status";
    let mut st = MtStatus {
        file_number: None,
        block_number: None,
        partition: 0,
        block_size: 0,
        density_code: 0,
        density: String::new(),
        status_bits: 0,
        flags: Vec::new(),
    };
    let (mut seen_position, mut in_flags) = (false, false);
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        let bad = |what: &str| ConfigError::new(SRC, n, format!("malformed {what} line `{line}`"));
        if line.is_empty() {
            continue;
        }
        if line.starts_with("File number=") {
            st.file_number = field(line, "File number=").and_then(signed).ok_or_else(|| bad("position"))?;
            st.block_number = field(line, "block number=").and_then(signed).ok_or_else(|| bad("position"))?;
            st.partition = field(line, "partition=").and_then(|p| p.parse().ok()).ok_or_else(|| bad("position"))?;
            seen_position = true;
        } else if line.starts_with("Tape block size ") {
            st.block_size =
                field(line, "Tape block size ").and_then(|p| p.parse().ok()).ok_or_else(|| bad("density"))?;
            let code = field(line, "Density code 0x").ok_or_else(|| bad("density"))?;
            st.density_code = u32::from_str_radix(code, 16).map_err(|_| bad("density"))?;
            st.density = line
                .split_once('(')
                .and_then(|(_, r)| r.rsplit_once(')'))
                .map_or(String::new(), |(name, _)| name.to_string());
        } else if line.starts_with("General status bits on (") {
            let hex = line.trim_start_matches("General status bits on (").trim_end_matches("):");
            st.status_bits = u64::from_str_radix(hex, 16).map_err(|_| bad("status bits"))?;
            in_flags = true;
        } else if line.ends_with("tape drive:") || line.starts_with("Soft error count") {
            // Drive type and error counter: not used.
        } else if in_flags {
            st.flags.extend(line.split_whitespace().map(str::to_string));
        } else {
            return Err(ConfigError::new(SRC, n, format!("unexpected line `{line}`")));
        }
    }
    if !seen_position {
        return Err(ConfigError::new(SRC, 0, "no `File number=` line"));
    }
    Ok(st)
}

/// Parses `mt -f <drive> tell` (`At block 1234.`): the logical block number.
pub fn parse_mt_tell(text: &str) -> Result<u64, ConfigError> {
    let line = text.lines().find(|l| l.trim().starts_with("At block"));
    line.and_then(|l| l.trim().trim_start_matches("At block").trim().trim_end_matches('.').parse().ok())
        .ok_or_else(|| ConfigError::new("mt tell", 0, format!("expected `At block <n>.`, found `{}`", text.trim())))
}

/// The SCSI devices sysfs lists under `root` (`/sys/bus/scsi/devices`), as `lsscsi -g` would
/// show them, in address order: one per `H:C:T:L` directory, its peripheral `type` (1 `tape`,
/// 8 `mediumx`, 0 `disk`, others `type N`), `vendor`, `model` and `rev`, its primary node from
/// `scsi_tape/stN` or `scsi_changer/schN` and its generic node from `scsi_generic/sgN`. What
/// lsscsi itself reads, for hosts without it.
pub fn scan_sysfs(root: &std::path::Path) -> std::io::Result<Vec<ScsiDevice>> {
    let read = |dir: &std::path::Path, f: &str| std::fs::read_to_string(dir.join(f)).map(|s| s.trim().to_string());
    // The first entry of `dir/sub` named `prefix` and digits: `/dev/<it>`.
    let node = |dir: &std::path::Path, sub: &str, prefix: &str| -> Option<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(sub))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.strip_prefix(prefix).is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())))
            .collect();
        names.sort();
        names.first().map(|n| format!("/dev/{n}"))
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let parts: Vec<u32> = name.split(':').filter_map(|p| p.parse().ok()).collect();
        let [host, channel, target, lun] = parts[..] else { continue };
        if name.split(':').count() != 4 {
            continue;
        }
        let dir = entry.path();
        let Ok(kind) = read(&dir, "type") else { continue };
        let kind = match kind.as_str() {
            "0" => "disk".to_string(),
            "1" => "tape".to_string(),
            "8" => "mediumx".to_string(),
            other => format!("type {other}"),
        };
        let device = match kind.as_str() {
            "tape" => node(&dir, "scsi_tape", "st"),
            "mediumx" => node(&dir, "scsi_changer", "sch"),
            _ => None,
        };
        out.push(ScsiDevice {
            host,
            channel,
            target,
            lun,
            kind,
            vendor: read(&dir, "vendor").unwrap_or_default(),
            model: read(&dir, "model").unwrap_or_default(),
            revision: read(&dir, "rev").unwrap_or_default(),
            device,
            sg: node(&dir, "scsi_generic", "sg"),
        });
    }
    out.sort_by_key(|d| (d.host, d.channel, d.target, d.lun));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtx_drive_lines_with_unknown_source_and_alternate_tags() {
        let text = "  Storage Changer /dev/sg3:2 Drives, 1 Slots ( 0 Import/Export )\n\
            Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = A00001L9:AlternateVolumeTag = X\n\
            Data Transfer Element 1:Full (Storage Element 1 Loaded)\n      Storage Element 1:Full \n";
        let s = parse_mtx_status(text).unwrap();
        assert_eq!(s.drives[0].barcode.as_deref(), Some("A00001L9"));
        assert_eq!(s.drives[0].source, None);
        assert_eq!((s.drives[1].source, s.drives[1].barcode.clone()), (Some(1), None));
        assert!(s.slots[0].full && s.slots[0].barcode.is_none());
    }

    #[test]
    fn mtx_count_mismatch_and_garbage_are_errors() {
        let e = parse_mtx_status("  Storage Changer /dev/sg3:1 Drives, 1 Slots ( 0 Import/Export )\n").unwrap_err();
        assert!(e.message.contains("announces 1 drives and 1 slots"), "{e}");
        let e = parse_mtx_status("mtx: Request Sense: Long Report=yes\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn lsscsi_short_lines_are_errors() {
        let e = parse_lsscsi("[0:0:0:0]    disk    ATA      X  /dev/sda\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.to_string().starts_with("lsscsi -g:1: expected"), "{e}");
    }

    #[test]
    fn mt_tell() {
        assert_eq!(parse_mt_tell("At block 1234.\n").unwrap(), 1234);
        assert!(parse_mt_tell("/dev/nst0: Input/output error\n").is_err());
    }
}
