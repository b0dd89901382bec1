//! The timezones simulated Projects may have. Only IANA zones without
//! daylight saving are offered, so a fixed offset is exact and the simulator
//! needs no timezone database; the spread (−11 h to +14 h) puts "today" in
//! a Project's zone a day away from the UTC day for some hours of every day.

/// (IANA name, offset from UTC in seconds, a locality for the address).
pub const TIMEZONES: &[(&str, i64, &str)] = &[
    ("America/Phoenix", -7 * 3600, "Phoenix"),
    ("America/Bogota", -5 * 3600, "Bogotá"),
    ("Pacific/Honolulu", -10 * 3600, "Honolulu"),
    ("Atlantic/Reykjavik", 0, "Reykjavík"),
    ("Africa/Nairobi", 3 * 3600, "Nairobi"),
    ("Asia/Kolkata", 5 * 3600 + 1800, "Pune"),
    ("Asia/Tokyo", 9 * 3600, "Tokyo"),
    ("Australia/Brisbane", 10 * 3600, "Brisbane"),
    ("Pacific/Kiritimati", 14 * 3600, "Kiritimati"),
    ("Pacific/Pago_Pago", -11 * 3600, "Pago Pago"),
    ("Etc/UTC", 0, "Greenwich"),
];

const DAY: i64 = 86_400;

/// The offset of a known zone.
pub fn offset_of(zone: &str) -> Option<i64> {
    TIMEZONES.iter().find(|(name, _, _)| *name == zone).map(|(_, offset, _)| *offset)
}

pub fn locality_of(zone: &str) -> &'static str {
    TIMEZONES.iter().find(|(name, _, _)| *name == zone).map_or("", |(_, _, place)| place)
}

/// The UTC instants `[start, end)` of the calendar day holding `now` at
/// `offset` seconds east of UTC.
pub fn day_of(now: i64, offset: i64) -> (i64, i64) {
    let start = (now + offset).div_euclid(DAY) * DAY - offset;
    (start, start + DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_in_a_zone() {
        // 2030-06-15T12:00:00Z.
        let noon = 1_907_755_200;
        let (utc_start, utc_end) = day_of(noon, 0);
        assert_eq!((utc_start, utc_end - utc_start), (noon - 12 * 3600, DAY));
        // In Kiritimati (+14) it is already 02:00 on the 16th.
        let (start, _) = day_of(noon, offset_of("Pacific/Kiritimati").unwrap());
        assert_eq!(start, utc_start + DAY - 14 * 3600);
        // In Pago Pago (−11) it is 01:00 on the 15th.
        let (start, _) = day_of(noon, -11 * 3600);
        assert_eq!(start, utc_start + 11 * 3600);
        assert_eq!(offset_of("Europe/Paris"), None, "zones with daylight saving are not offered");
        assert_eq!(locality_of("Asia/Tokyo"), "Tokyo");
    }
}
