//! Time as the engine sees it: milliseconds since the Unix epoch, always
//! handed in by the host. Nothing here reads a clock.

/// Milliseconds since 1970-01-01T00:00:00Z, as given by the host.
pub type Millis = u64;

/// The latest time the engine holds: 2^53 - 1 ms (year 287 396), the
/// largest integer a JS number represents exactly. Token expiries beyond it
/// are refused (`BAD_CLAIMS`), asserted ones too (`BAD_IDENTITY`), and
/// deadlines the engine computes are clamped to it, so that every time it
/// hands out fits a JS number.
pub const MAX_TIME: Millis = (1 << 53) - 1;

/// `now + after`, clamped to [`MAX_TIME`].
pub fn deadline(now: Millis, after: u64) -> Millis {
    now.saturating_add(after).min(MAX_TIME)
}

/// Formats `ms` as ISO 8601 UTC with millisecond precision,
/// e.g. `2024-07-13T10:13:28.496Z`.
pub fn iso8601(ms: Millis) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Howard Hinnant's `civil_from_days`: days since the epoch to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_720_865_608_496), "2024-07-13T10:13:28.496Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
