//! Validation of names and strings that come from requests and administrators.
//!
//! Every name is checked before it is looked up or stored, so a hostile string (spaces,
//! slashes, control characters, kilobytes of text) is refused with `invalid_argument` naming the
//! field, and never reaches a key scheme or a query.

use crate::error::{Error, Result};

/// Longest identifier (VID, pool, library, drive, policy, storage class, VO, disk system).
pub const MAX_NAME: usize = 100;
/// Longest requester name or group.
pub const MAX_REQUESTER: usize = 256;
/// Longest free text (disk file id, URL, reason, activity).
pub const MAX_TEXT: usize = 4096;

fn shown(value: &str) -> String {
    let mut s: String = value.chars().take(40).collect();
    if value.chars().count() > 40 {
        s.push('…');
    }
    format!("{s:?}")
}

/// Checks an identifier: 1 to [`MAX_NAME`] bytes, no whitespace, `/` or control characters.
pub fn check_name(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty")));
    }
    if value.len() > MAX_NAME {
        return Err(Error::invalid(format!(
            "{field} {} is {} bytes long, the limit is {MAX_NAME}",
            shown(value),
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control() || *c == '/') {
        return Err(Error::invalid(format!("{field} {} contains the forbidden character {c:?}", shown(value))));
    }
    Ok(())
}

/// Checks a requester name or group: 1 to [`MAX_REQUESTER`] bytes, no control characters.
pub fn check_requester(field: &str, value: &str) -> Result<()> {
    check_text(field, value, MAX_REQUESTER)?;
    if value.is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty")));
    }
    Ok(())
}

/// Checks free text: at most `max` bytes, no control characters.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{field} {} is {} bytes long, the limit is {max}",
            shown(value),
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!("{field} {} contains the control character {c:?}", shown(value))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        assert!(check_name("vid", "V00001").is_ok());
        for bad in ["", "a b", "a/b", "a\u{7}b", "a\nb"] {
            assert!(check_name("vid", bad).is_err(), "{bad:?}");
        }
        let long = "x".repeat(10_000);
        let e = check_name("tape pool", &long).unwrap_err();
        assert!(e.message.contains("10000 bytes"), "{e}");
        assert!(e.message.len() < 200, "the message does not echo 10 kB");
        assert!(check_requester("requester name", "Alice Smith").is_ok());
        assert!(check_requester("requester name", "a\u{0}").is_err());
    }
}
