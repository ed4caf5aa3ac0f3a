//! The simulated library printed as `mtx -f <device> status` prints a changer (`mtx.c`
//! `Status()`), so that the parser of the real path can be checked against the simulator.

use super::State;
use crate::Element;
use std::fmt::Write;

/// The `mtx status` text of the library's state.
pub(super) fn status(st: &State, device: &str) -> String {
    let slots = st.slots.len();
    let drives = st.drives.iter().map(|d| d.ordinal + 1).max().unwrap_or(0);
    let mut out = format!(
        "  Storage Changer {device}:{drives} Drives, {} Slots ( {} Import/Export )\n",
        slots + st.maps.len(),
        st.maps.len()
    );
    for ordinal in 0..drives {
        let _ = write!(out, "Data Transfer Element {ordinal}:");
        let d = st.drives.iter().find(|d| d.ordinal == ordinal);
        match d.and_then(|d| d.cartridge.as_ref().map(|c| (c, &d.source))) {
            None => out.push_str("Empty\n"),
            Some((tag, source)) => {
                match source {
                    Some(Element::Slot(n)) => {
                        let _ = write!(out, "Full (Storage Element {n} Loaded)");
                    }
                    Some(Element::ImportExport(n)) => {
                        let _ = write!(out, "Full (Storage Element {} Loaded)", slots + *n as usize);
                    }
                    _ => out.push_str("Full (Unknown Storage Element Loaded)"),
                }
                let _ = writeln!(out, ":VolumeTag = {tag}");
            }
        }
    }
    let all = st.slots.iter().map(|b| (b, "")).chain(st.maps.iter().map(|b| (b, " IMPORT/EXPORT")));
    for (i, (barcode, kind)) in all.enumerate() {
        let _ = write!(out, "      Storage Element {}{kind}:", i + 1);
        match barcode {
            Some(tag) => {
                let _ = writeln!(out, "Full :VolumeTag={tag}");
            }
            None => out.push_str("Empty\n"),
        }
    }
    out
}
