//! Media and drive types: what a barcode says about its cartridge (mhVTL's conventions), what a
//! drive's product identification says about its generation, and the timing profile and
//! capacity the simulator uses for each.
//!
//! Figures (IBM's published LTO performance specifications for full-height drives, see
//! `/work/shared/reference/mhvtl-and-e2e.md` 4.5): LTO-9 400 MB/s native, load-to-ready 17 s,
//! unload 30 s, average locate 45 s, average rewind 55 s, 18 TB; LTO-8 360 MB/s, 15 s, 24 s, 12 TB.
//! No average locate or rewind is published for LTO-8: the LTO-9 figures stand in. The fixed
//! cost of a locate (2 s) and of each file (tape mark and flush, 1 s) are uncalibrated
//! placeholders. Rates and capacities are native (no compression); 1 MB = 10^6 bytes.

use std::fmt;

/// The kind of cartridge a barcode names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Media {
    /// An LTO data cartridge of that generation (`L1`..`L9` suffix).
    Lto(u8),
    /// A cleaning cartridge (`CLN` prefix).
    Cleaning,
    /// Anything else (another suffix, WORM, no suffix): kept as the barcode's suffix.
    Other(String),
}

impl Media {
    /// The media of a barcode, by mhVTL's conventions: prefix `CLN` is a cleaning cartridge;
    /// with 8 or more characters, a last-two `L1`..`L9` is that LTO generation.
    pub fn from_barcode(barcode: &str) -> Media {
        if barcode.starts_with("CLN") {
            return Media::Cleaning;
        }
        let b = barcode.as_bytes();
        if b.len() >= 8 {
            let suffix = &barcode[b.len() - 2..];
            if b[b.len() - 2] == b'L' && (b'1'..=b'9').contains(&b[b.len() - 1]) {
                return Media::Lto(b[b.len() - 1] - b'0');
            }
            return Media::Other(suffix.to_string());
        }
        Media::Other(String::new())
    }

    /// The native capacity in bytes of an LTO data cartridge, `None` for other media.
    pub fn capacity(&self) -> Option<u64> {
        const TB: u64 = 1_000_000_000_000;
        const GB: u64 = 1_000_000_000;
        match self {
            Media::Lto(9) => Some(18 * TB),
            Media::Lto(8) => Some(12 * TB),
            Media::Lto(7) => Some(6 * TB),
            Media::Lto(6) => Some(2500 * GB),
            Media::Lto(5) => Some(1500 * GB),
            _ => None,
        }
    }

    /// The native transfer rate of the media in bytes per second, `None` when not modelled.
    pub fn native_rate(&self) -> Option<u64> {
        const MB: u64 = 1_000_000;
        match self {
            Media::Lto(9) => Some(400 * MB),
            Media::Lto(8) => Some(360 * MB),
            Media::Lto(7) => Some(300 * MB),
            Media::Lto(6) => Some(160 * MB),
            Media::Lto(5) => Some(140 * MB),
            _ => None,
        }
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Media::Lto(g) => write!(f, "LTO-{g}"),
            Media::Cleaning => write!(f, "cleaning"),
            Media::Other(s) if s.is_empty() => write!(f, "unknown media"),
            Media::Other(s) => write!(f, "unknown media ({s})"),
        }
    }
}

/// The LTO generation of a drive from its product identification: IBM `ULT3580-TD9`,
/// `ULTRIUM-TD8`, `ULT3580-HH9` (`TD`/`HH` + digit), HP `Ultrium 9-SCSI` (`Ultrium ` + digit).
pub fn drive_generation(product: &str) -> Option<u8> {
    let p = product.to_ascii_uppercase();
    for marker in ["-TD", "-HH", "ULTRIUM "] {
        if let Some(i) = p.find(marker) {
            let digit = p[i + marker.len()..].chars().next()?;
            return digit.to_digit(10).filter(|d| *d > 0).map(|d| d as u8);
        }
    }
    None
}

/// How long a drive takes for each thing it does, in milliseconds, and how fast it streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveProfile {
    /// A name for messages (`LTO-9 FH`).
    pub name: String,
    /// The LTO generation.
    pub generation: u8,
    /// Native transfer rate in bytes per second.
    pub rate: u64,
    /// Load-to-ready: threading a cartridge the robot inserted.
    pub load_ms: i64,
    /// Unload once rewound.
    pub unload_ms: i64,
    /// Average locate from the beginning of tape to a uniformly random position.
    pub avg_locate_ms: i64,
    /// Average rewind from a uniformly random position.
    pub avg_rewind_ms: i64,
    /// Fixed cost of any locate or rewind that moves the tape.
    pub locate_fixed_ms: i64,
    /// Fixed cost of each file written or read (tape mark, flush).
    pub per_file_ms: i64,
}

impl DriveProfile {
    /// An LTO-9 full-height drive.
    pub fn lto9_full_height() -> Self {
        DriveProfile {
            name: "LTO-9 FH".into(),
            generation: 9,
            rate: 400_000_000,
            load_ms: 17_000,
            unload_ms: 30_000,
            avg_locate_ms: 45_000,
            avg_rewind_ms: 55_000,
            locate_fixed_ms: 2_000,
            per_file_ms: 1_000,
        }
    }

    /// An LTO-8 full-height drive (average locate and rewind borrowed from LTO-9).
    pub fn lto8_full_height() -> Self {
        DriveProfile {
            name: "LTO-8 FH".into(),
            generation: 8,
            rate: 360_000_000,
            load_ms: 15_000,
            unload_ms: 24_000,
            ..DriveProfile::lto9_full_height()
        }
    }

    /// The profile of a drive from its product identification, `None` for a type without one.
    pub fn for_product(product: &str) -> Option<Self> {
        match drive_generation(product)? {
            9 => Some(DriveProfile::lto9_full_height()),
            8 => Some(DriveProfile::lto8_full_height()),
            _ => None,
        }
    }

    /// Whether the drive reads and writes this media: its own generation and the one before.
    /// The error says why not.
    pub fn accepts(&self, media: &Media) -> Result<(), String> {
        match media {
            Media::Lto(g) if *g == self.generation || *g + 1 == self.generation => Ok(()),
            Media::Lto(g) => Err(format!(
                "an {} drive reads and writes LTO-{} and LTO-{} only, not LTO-{g}",
                self.name,
                self.generation,
                self.generation - 1
            )),
            Media::Cleaning => Err("a cleaning cartridge holds no data".into()),
            other => Err(format!("{other} is not a data cartridge this drive knows")),
        }
    }

    /// The streaming rate on this media: the slower of drive and media.
    pub fn rate_on(&self, media: &Media) -> u64 {
        media.native_rate().map_or(self.rate, |m| m.min(self.rate))
    }

    /// Time to move the tape over `distance` bytes on a cartridge of `capacity` bytes:
    /// `fixed + distance / capacity * 2 * average`, so that a locate from the beginning of tape
    /// to a uniformly random position averages `fixed + average`; zero when nothing moves.
    pub fn travel_ms(&self, distance: u64, capacity: u64, average_ms: i64) -> i64 {
        if distance == 0 || capacity == 0 {
            return 0;
        }
        let span = (distance.min(capacity) as u128) * 2 * average_ms as u128;
        self.locate_fixed_ms + span.div_ceil(capacity as u128) as i64
    }

    /// Time to stream `bytes` at `rate` bytes per second, plus the per-file cost.
    pub fn transfer_ms(&self, bytes: u64, rate: u64) -> i64 {
        let ms = (bytes as u128 * 1000).div_ceil(rate.max(1) as u128);
        self.per_file_ms + ms as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcodes_follow_mhvtl_conventions() {
        assert_eq!(Media::from_barcode("V00101L9"), Media::Lto(9));
        assert_eq!(Media::from_barcode("V00201L8"), Media::Lto(8));
        assert_eq!(Media::from_barcode("CLN101L9"), Media::Cleaning);
        assert_eq!(Media::from_barcode("G03001TA"), Media::Other("TA".into()));
        assert_eq!(Media::from_barcode("M01001"), Media::Other(String::new()));
        assert_eq!(Media::Lto(9).capacity(), Some(18_000_000_000_000));
        assert_eq!(Media::Lto(8).capacity(), Some(12_000_000_000_000));
    }

    #[test]
    fn drive_products_give_generations() {
        assert_eq!(drive_generation("ULT3580-TD9"), Some(9));
        assert_eq!(drive_generation("ULTRIUM-TD8"), Some(8));
        assert_eq!(drive_generation("ULT3580-HH9"), Some(9));
        assert_eq!(drive_generation("Ultrium 8-SCSI"), Some(8));
        assert_eq!(drive_generation("T10000B"), None);
        assert!(DriveProfile::for_product("ULT3580-TD6").is_none());
    }

    #[test]
    fn compatibility_is_own_generation_and_one_back() {
        let lto9 = DriveProfile::lto9_full_height();
        let lto8 = DriveProfile::lto8_full_height();
        assert!(lto9.accepts(&Media::Lto(8)).is_ok());
        assert!(lto8.accepts(&Media::Lto(9)).is_err());
        assert!(lto9.accepts(&Media::Cleaning).is_err());
        assert_eq!(lto9.rate_on(&Media::Lto(8)), 360_000_000);
    }

    #[test]
    fn travel_is_proportional_and_averages_the_published_figure() {
        let p = DriveProfile::lto9_full_height();
        let cap = 18_000_000_000_000;
        assert_eq!(p.travel_ms(0, cap, p.avg_locate_ms), 0);
        // Half the tape away: the average locate from BOT, plus the fixed cost.
        assert_eq!(p.travel_ms(cap / 2, cap, p.avg_locate_ms), 2_000 + 45_000);
        assert_eq!(p.travel_ms(cap, cap, p.avg_locate_ms), 2_000 + 90_000);
        // 4 GB at 400 MB/s: 10 s, plus 1 s per file.
        assert_eq!(p.transfer_ms(4_000_000_000, p.rate), 11_000);
    }
}
