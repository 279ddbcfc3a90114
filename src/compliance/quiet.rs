//! Quiet hours: when a message the business starts may go to a contact.
//!
//! 47 CFR 64.1200(c)(1) forbids telephone solicitation to a residential subscriber "before the
//! hour of 8 a.m. or after 9 p.m. (local time at the called party's location)", and under the
//! TCPA a text message is a call (FCC 03-153, 18 FCC Rcd 14014 ¶165; reaffirmed in FCC 15-72,
//! 30 FCC Rcd 7961). Solicitation excludes messages sent with prior express permission or to an
//! established business relationship (§64.1200(f)(15)), but which messages qualify is a judgement
//! per message; Drawbridge holds every message the business starts, the strict reading. Some
//! states set shorter hours, so the allowed [`Window`] is configurable; its default is the
//! federal 08:00–21:00.
//!
//! The called party's location is known only roughly. [`zones_for`] takes the contact's stored
//! time zone when there is one, else the zones of a North American number's area code
//! ([`super::nanp`]), else the business's default zone. An area code can span several zones, and
//! we cannot tell which part of its territory the customer is in, so [`allowed`] wants the window
//! open in every one of them, and [`next_allowed`] finds the first minute when it is.
//!
//! A reply to the customer's own recent message is conversation, not solicitation: [`exempt`]
//! says whether one is within the reply window (60 minutes by default).
//!
//! Every function here is pure: the current time is a parameter, never read from the system
//! clock, so the outbox and its tests decide what "now" is.

use std::fmt;

use chrono::{DateTime, DurationRound, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use super::nanp;
use crate::phone::E164;

/// How long a reply stays exempt after the customer's own message, by default.
pub const DEFAULT_REPLY_WINDOW: TimeDelta = TimeDelta::minutes(60);

/// The farthest [`next_allowed`] looks ahead. In any one zone a window opens within a day plus
/// that zone's daylight-saving shift; zones whose windows have not overlapped in 48 hours never
/// will.
pub const MAX_HOLD: TimeDelta = TimeDelta::hours(48);

const ONE_MINUTE: TimeDelta = TimeDelta::minutes(1);

/// The local times at which a business-initiated message may be sent: from `start` up to but not
/// including `end`, to the minute.
///
/// - `start < end` is a daytime window: 08:00–21:00 allows 08:00 through 20:59:59.
/// - `start > end` runs overnight, through midnight: 22:00–06:00 allows 22:00 through 05:59:59.
///   An end of 00:00 means "until midnight": 08:00–00:00 allows 08:00 through 23:59:59.
/// - `start == end` is refused: it could mean an empty window (hold every message for ever) or
///   the whole day (no quiet hours at all), and a compliance setting must not be a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    start: NaiveTime,
    end: NaiveTime,
}

/// Which end of a [`Window`] a [`WindowError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Start,
    End,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Start => "start",
            Self::End => "end",
        })
    }
}

/// Why quiet-hours settings were refused. Configuration text is not personal data, so the
/// offending text is quoted to help whoever fixes the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "quiet hours {bound}: expected a 24-hour time written HH:MM, such as 08:00 or 21:00; \
         got {text:?}"
    )]
    BadTime { bound: Bound, text: String },
    #[error("quiet hours {bound}: 24:00 is not a time of day; write 00:00 for midnight")]
    TwentyFour { bound: Bound },
    #[error("quiet hours {bound}: {time} is not a whole minute")]
    NotWholeMinute { bound: Bound, time: NaiveTime },
    #[error(
        "quiet hours start and end are both {0}: that is either no window or the whole day; \
         give two different times"
    )]
    Empty(NaiveTime),
}

/// `NaiveTime` for hours and minutes known to be valid, usable in constants.
const fn hm(hour: u32, minute: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(hour, minute, 0) {
        Some(time) => time,
        None => NaiveTime::MIN,
    }
}

impl Window {
    /// 08:00–21:00, the federal limits of 47 CFR 64.1200(c)(1).
    pub const TCPA: Window = Window {
        start: hm(8, 0),
        end: hm(21, 0),
    };

    /// A window from two times of day.
    ///
    /// # Errors
    /// [`WindowError::NotWholeMinute`] when a time has seconds; [`WindowError::Empty`] when
    /// `start == end`.
    pub fn new(start: NaiveTime, end: NaiveTime) -> Result<Self, WindowError> {
        for (bound, time) in [(Bound::Start, start), (Bound::End, end)] {
            if time.second() != 0 || time.nanosecond() != 0 {
                return Err(WindowError::NotWholeMinute { bound, time });
            }
        }
        if start == end {
            return Err(WindowError::Empty(start));
        }
        Ok(Self { start, end })
    }

    /// A window from configuration text, each time written `HH:MM` on the 24-hour clock
    /// (`"08:00"`, `"21:00"`). Surrounding white space is ignored; nothing else is guessed at.
    ///
    /// # Errors
    /// [`WindowError::BadTime`] or [`WindowError::TwentyFour`] for text that is not such a time,
    /// and the errors of [`Window::new`].
    pub fn parse(start: &str, end: &str) -> Result<Self, WindowError> {
        Self::new(
            parse_hh_mm(Bound::Start, start)?,
            parse_hh_mm(Bound::End, end)?,
        )
    }

    /// The first allowed minute of the day.
    #[must_use]
    pub fn start(&self) -> NaiveTime {
        self.start
    }

    /// The first minute no longer allowed.
    #[must_use]
    pub fn end(&self) -> NaiveTime {
        self.end
    }

    /// Whether the window runs through midnight (`start > end`).
    #[must_use]
    pub fn is_overnight(&self) -> bool {
        self.start > self.end
    }

    /// Whether a local time of day is inside the window.
    #[must_use]
    pub fn contains(&self, local: NaiveTime) -> bool {
        if self.is_overnight() {
            local >= self.start || local < self.end
        } else {
            self.start <= local && local < self.end
        }
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::TCPA
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}–{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

fn parse_hh_mm(bound: Bound, text: &str) -> Result<NaiveTime, WindowError> {
    let trimmed = text.trim();
    let bad = || WindowError::BadTime {
        bound,
        text: text.to_owned(),
    };
    let digits = match trimmed.as_bytes() {
        [h1, h2, b':', m1, m2] => [*h1, *h2, *m1, *m2],
        _ => return Err(bad()),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let [h1, h2, m1, m2] = digits.map(|digit| u32::from(digit - b'0'));
    let (hour, minute) = (h1 * 10 + h2, m1 * 10 + m2);
    if hour == 24 && minute == 0 {
        return Err(WindowError::TwentyFour { bound });
    }
    if hour > 23 || minute > 59 {
        return Err(bad());
    }
    NaiveTime::from_hms_opt(hour, minute, 0).ok_or_else(bad)
}

/// Where a contact's [`Zones`] came from, for display and bounded metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneSource {
    /// The time zone stored on the contact.
    Stored,
    /// The area code of a `+1` number ([`super::nanp`]).
    AreaCode,
    /// The business's default zone: nothing better was known.
    Default,
}

impl ZoneSource {
    /// A stable lower-case name: `stored`, `area_code`, `default`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::AreaCode => "area_code",
            Self::Default => "default",
        }
    }
}

impl fmt::Display for ZoneSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stored => "stored on the contact",
            Self::AreaCode => "from the area code",
            Self::Default => "business default",
        })
    }
}

/// The time zones a contact may be in (at least one) and where they came from.
///
/// It holds no part of the phone number: not even the area code, which the masked form of a
/// number hides. The zones of an area code do tell roughly where its owner lives, as a stored
/// zone does; they are shown to staff who may see the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    zones: ZoneList,
    source: ZoneSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneList {
    One(Tz),
    /// A row of the area-code table: never empty (tested there).
    Table(&'static [Tz]),
}

impl Zones {
    /// One zone from a known source, such as a business default the caller already chose.
    #[must_use]
    pub fn one(zone: Tz, source: ZoneSource) -> Self {
        Self {
            zones: ZoneList::One(zone),
            source,
        }
    }

    /// The zones, at least one.
    #[must_use]
    pub fn zones(&self) -> &[Tz] {
        match &self.zones {
            ZoneList::One(zone) => std::slice::from_ref(zone),
            ZoneList::Table(zones) => zones,
        }
    }

    /// Where the zones came from.
    #[must_use]
    pub fn source(&self) -> ZoneSource {
        self.source
    }
}

impl fmt::Display for Zones {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, zone) in self.zones().iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            f.write_str(zone.name())?;
        }
        write!(f, " ({})", self.source)
    }
}

/// The zones whose local time counts for `number`: the contact's `stored` zone if there is one,
/// else the zones of the area code of a NANP (`+1`, ten-digit) number listed in
/// [`super::nanp`], else `default`.
#[must_use]
pub fn zones_for(number: &E164, stored: Option<Tz>, default: Tz) -> Zones {
    if let Some(zone) = stored {
        return Zones::one(zone, ZoneSource::Stored);
    }
    match area_code(number).and_then(nanp::zones) {
        Some(zones) => Zones {
            zones: ZoneList::Table(zones),
            source: ZoneSource::AreaCode,
        },
        None => Zones::one(default, ZoneSource::Default),
    }
}

/// The area code of a NANP number: `+1` then ten digits, of which it is the first three.
fn area_code(number: &E164) -> Option<u16> {
    let digits = number.digits();
    let national = digits.strip_prefix('1').filter(|rest| rest.len() == 10)?;
    national.get(..3)?.parse().ok()
}

/// Whether a business-initiated message may be sent at `at`: only if the local time is inside
/// `window` in every one of the contact's zones.
#[must_use]
pub fn allowed(window: &Window, zones: &Zones, at: DateTime<Utc>) -> bool {
    let zones = zones.zones();
    // `Zones` is never empty; should it ever be, nothing is known, and nothing is allowed.
    !zones.is_empty()
        && zones
            .iter()
            .all(|zone| window.contains(at.with_timezone(zone).time()))
}

/// When a message held at `at` may go: `at` itself if [`allowed`] then, otherwise the earliest
/// whole minute after `at` that is allowed in every zone.
///
/// The answer is never earlier than `at` and never later than `at + MAX_HOLD`. If the contact's
/// zones never share an open window (a window of a few minutes across zones hours apart) the
/// answer is `at + MAX_HOLD`, which need not be allowed: the outbox asks again then.
///
/// The search walks forward a minute at a time, asking [`allowed`], so skipped and repeated
/// hours at daylight-saving changes, and half-hour zones such as America/St_Johns, need no
/// special case: each minute is judged by the offset in force at that instant. Every offset in use
/// today is a whole number of minutes, and so are the window's bounds, so whenever the
/// window opens it opens on a whole minute. It costs one offset look-up per zone per minute
/// waited: for the default window in one zone at most 660 minutes' worth (720 on the night the
/// clocks go back), about 30 µs in a release build.
#[must_use]
pub fn next_allowed(window: &Window, zones: &Zones, at: DateTime<Utc>) -> DateTime<Utc> {
    if allowed(window, zones, at) {
        return at;
    }
    let limit = at
        .checked_add_signed(MAX_HOLD)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut minute = next_whole_minute(at);
    while minute <= limit {
        if allowed(window, zones, minute) {
            return minute;
        }
        match minute.checked_add_signed(ONE_MINUTE) {
            Some(next) => minute = next,
            None => break,
        }
    }
    limit
}

/// `at` if it is a whole minute, else the next one.
fn next_whole_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = at.duration_trunc(ONE_MINUTE).unwrap_or(at);
    if floor < at {
        floor.checked_add_signed(ONE_MINUTE).unwrap_or(at)
    } else {
        floor
    }
}

/// Whether a message at `at` replies to the customer closely enough to be exempt from quiet
/// hours: their last message came no later than `at`, and less than `reply_window` before it.
///
/// The window is half-open, like [`Window`]: a reply at exactly 60 minutes is no longer exempt.
/// A customer message stamped after `at` (clocks of two instances apart) gives no exemption, so a
/// bad timestamp cannot exempt messages until some future date.
#[must_use]
pub fn exempt(
    last_customer_message: Option<DateTime<Utc>>,
    reply_window: TimeDelta,
    at: DateTime<Utc>,
) -> bool {
    last_customer_message.is_some_and(|last| last <= at && at - last < reply_window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use proptest::prelude::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// The instant at which `zone` shows this local time; panics if it is skipped or repeated.
    fn local(zone: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        zone.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn one(zone: Tz) -> Zones {
        Zones::one(zone, ZoneSource::Stored)
    }

    fn number(text: &str) -> E164 {
        E164::parse(text).unwrap()
    }

    fn window(start: &str, end: &str) -> Window {
        Window::parse(start, end).unwrap()
    }

    const NEW_YORK: Tz = Tz::America__New_York;

    // --- the window ---------------------------------------------------------------------------

    #[test]
    fn the_default_window_is_eight_to_nine() {
        assert_eq!(Window::default(), window("08:00", "21:00"));
        assert_eq!(Window::default().to_string(), "08:00–21:00");
        assert!(!Window::default().is_overnight());
    }

    #[test]
    fn window_edges() {
        let w = Window::default();
        let ny = one(NEW_YORK);
        for (h, m, expected) in [
            (7, 59, false),
            (8, 0, true),
            (12, 0, true),
            (20, 59, true),
            (21, 0, false),
            (23, 30, false),
            (0, 0, false),
        ] {
            let at = local(NEW_YORK, 2025, 1, 15, h, m);
            assert_eq!(allowed(&w, &ny, at), expected, "{h:02}:{m:02}");
        }
        // The last second of 20:59 is in; the first instant of 21:00 is out.
        let last = local(NEW_YORK, 2025, 1, 15, 20, 59) + TimeDelta::seconds(59);
        assert!(allowed(&w, &ny, last));
        let before_eight = local(NEW_YORK, 2025, 1, 15, 8, 0) - TimeDelta::nanoseconds(1);
        assert!(!allowed(&w, &ny, before_eight));
    }

    #[test]
    fn an_overnight_window_runs_through_midnight() {
        let w = window("22:00", "06:00");
        assert!(w.is_overnight());
        for (h, m, expected) in [
            (21, 59, false),
            (22, 0, true),
            (23, 59, true),
            (0, 0, true),
            (5, 59, true),
            (6, 0, false),
            (12, 0, false),
        ] {
            let t = NaiveTime::from_hms_opt(h, m, 0).unwrap();
            assert_eq!(w.contains(t), expected, "{h:02}:{m:02}");
        }
        // An end of 00:00 means until midnight.
        let until_midnight = window("08:00", "00:00");
        assert!(until_midnight.contains(NaiveTime::from_hms_opt(23, 59, 59).unwrap()));
        assert!(!until_midnight.contains(NaiveTime::MIN));
        assert!(!until_midnight.contains(NaiveTime::from_hms_opt(7, 59, 0).unwrap()));
    }

    #[test]
    fn window_text_is_strict_and_its_errors_say_what_to_write() {
        assert_eq!(
            window(" 09:30 ", "20:00").start(),
            NaiveTime::from_hms_opt(9, 30, 0).unwrap()
        );
        for text in [
            "8:00", "08:0", "0800", "08.00", "08:00:00", "", "ab:cd", "25:00", "08:60", "-1:00",
            "+8:00",
        ] {
            let error = Window::parse(text, "21:00").unwrap_err();
            assert_eq!(
                error,
                WindowError::BadTime {
                    bound: Bound::Start,
                    text: text.to_owned()
                },
                "{text:?}"
            );
            assert!(error.to_string().contains("HH:MM"), "{error}");
        }
        let error = Window::parse("08:00", "24:00").unwrap_err();
        assert_eq!(error, WindowError::TwentyFour { bound: Bound::End });
        assert!(error.to_string().contains("00:00"), "{error}");

        let error = Window::parse("08:00", "08:00").unwrap_err();
        assert!(matches!(error, WindowError::Empty(_)));
        assert!(error.to_string().contains("08:00"), "{error}");

        let with_seconds = NaiveTime::from_hms_opt(8, 0, 30).unwrap();
        assert_eq!(
            Window::new(with_seconds, hm(21, 0)),
            Err(WindowError::NotWholeMinute {
                bound: Bound::Start,
                time: with_seconds
            })
        );
    }

    // --- next_allowed -------------------------------------------------------------------------

    #[test]
    fn next_allowed_waits_for_eight_in_the_morning() {
        let w = Window::default();
        let ny = one(NEW_YORK);
        // From 22:30: 08:00 the next day.
        let at = local(NEW_YORK, 2025, 1, 15, 22, 30);
        assert_eq!(
            next_allowed(&w, &ny, at),
            local(NEW_YORK, 2025, 1, 16, 8, 0)
        );
        // From 03:00: 08:00 the same day.
        let at = local(NEW_YORK, 2025, 1, 15, 3, 0);
        assert_eq!(
            next_allowed(&w, &ny, at),
            local(NEW_YORK, 2025, 1, 15, 8, 0)
        );
        // From 21:00 exactly: the next morning.
        let at = local(NEW_YORK, 2025, 1, 15, 21, 0);
        assert_eq!(
            next_allowed(&w, &ny, at),
            local(NEW_YORK, 2025, 1, 16, 8, 0)
        );
        // Inside the window: now, to the nanosecond.
        let at = local(NEW_YORK, 2025, 1, 15, 12, 0) + TimeDelta::milliseconds(1500);
        assert_eq!(next_allowed(&w, &ny, at), at);
        // Outside, between minutes: the next whole minute that is allowed.
        let at = local(NEW_YORK, 2025, 1, 15, 7, 59) + TimeDelta::seconds(30);
        assert_eq!(
            next_allowed(&w, &ny, at),
            local(NEW_YORK, 2025, 1, 15, 8, 0)
        );
    }

    #[test]
    fn next_allowed_across_spring_forward_in_new_york() {
        let w = Window::default();
        let ny = one(NEW_YORK);
        // 2025-03-09: 02:00 EST becomes 03:00 EDT at 07:00 UTC. 08:00 that morning is EDT
        // (12:00 UTC), not EST (13:00 UTC).
        let at = utc(2025, 3, 9, 6, 0); // 01:00 EST
        assert_eq!(next_allowed(&w, &ny, at), utc(2025, 3, 9, 12, 0));
        // The evening before is still EST: 21:00 EST is 02:00 UTC.
        assert!(allowed(&w, &ny, utc(2025, 3, 9, 1, 59)));
        assert!(!allowed(&w, &ny, utc(2025, 3, 9, 2, 0)));

        // A window opening inside the skipped hour opens when the clock jumps past its start.
        let w = window("02:30", "05:00");
        assert_eq!(next_allowed(&w, &ny, at), utc(2025, 3, 9, 7, 0)); // 03:00 EDT
        assert!(!allowed(&w, &ny, utc(2025, 3, 9, 6, 59))); // 01:59 EST
    }

    #[test]
    fn next_allowed_across_fall_back_in_new_york() {
        let w = Window::default();
        let ny = one(NEW_YORK);
        // 2025-11-02: 02:00 EDT becomes 01:00 EST at 06:00 UTC. 08:00 that morning is EST.
        let at = utc(2025, 11, 2, 4, 0); // 00:00 EDT
        assert_eq!(next_allowed(&w, &ny, at), utc(2025, 11, 2, 13, 0));
        assert!(!allowed(&w, &ny, utc(2025, 11, 2, 12, 59)));

        // The repeated hour: a window inside it opens twice.
        let w = window("01:30", "01:45");
        let first = next_allowed(&w, &ny, utc(2025, 11, 2, 5, 0)); // 01:00 EDT
        assert_eq!(first, utc(2025, 11, 2, 5, 30)); // 01:30 EDT
        let second = next_allowed(&w, &ny, utc(2025, 11, 2, 5, 45)); // 01:45 EDT
        assert_eq!(second, utc(2025, 11, 2, 6, 30)); // 01:30 EST

        // A window the clock falls back into opens again at the change.
        let w = window("00:00", "01:30");
        let at = utc(2025, 11, 2, 5, 30); // 01:30 EDT, just closed
        assert!(!allowed(&w, &ny, at));
        assert_eq!(next_allowed(&w, &ny, at), utc(2025, 11, 2, 6, 0)); // 01:00 EST
    }

    #[test]
    fn zones_with_half_hours_and_without_daylight_saving() {
        let w = Window::default();
        // St. John's: UTC-3:30 in winter, UTC-2:30 in summer.
        let st_johns = one(Tz::America__St_Johns);
        assert_eq!(
            next_allowed(&w, &st_johns, utc(2025, 1, 15, 9, 0)),
            utc(2025, 1, 15, 11, 30)
        );
        assert!(!allowed(&w, &st_johns, utc(2025, 1, 15, 11, 29)));
        assert_eq!(
            next_allowed(&w, &st_johns, utc(2025, 7, 15, 9, 0)),
            utc(2025, 7, 15, 10, 30)
        );
        assert!(allowed(&w, &st_johns, utc(2025, 7, 15, 23, 29))); // 20:59 NDT
        assert!(!allowed(&w, &st_johns, utc(2025, 7, 15, 23, 30))); // 21:00 NDT

        // Honolulu, Phoenix and Regina keep one offset all year.
        for (zone, hours_behind) in [
            (Tz::Pacific__Honolulu, 10),
            (Tz::America__Phoenix, 7),
            (Tz::America__Regina, 6),
        ] {
            for month in [1, 7] {
                let at = local(zone, 2025, month, 15, 3, 0);
                let opens = next_allowed(&w, &one(zone), at);
                assert_eq!(
                    opens,
                    utc(2025, month, 15, 8 + hours_behind, 0),
                    "{zone} {month}"
                );
            }
        }
    }

    #[test]
    fn an_area_code_spanning_two_zones_waits_for_both() {
        let w = Window::default();
        // 812, southern Indiana: Central and Eastern. In June, 08:00 EDT is 07:00 CDT.
        let zones = zones_for(&number("+18125550123"), None, NEW_YORK);
        assert_eq!(zones.source(), ZoneSource::AreaCode);
        assert_eq!(zones.zones(), [Tz::America__Chicago, NEW_YORK]);
        assert!(!allowed(&w, &zones, utc(2025, 6, 10, 12, 0))); // 08:00 EDT, 07:00 CDT
        assert!(allowed(&w, &zones, utc(2025, 6, 10, 13, 0))); // 09:00 EDT, 08:00 CDT
        assert!(allowed(&w, &zones, utc(2025, 6, 11, 0, 59))); // 20:59 EDT
        assert!(!allowed(&w, &zones, utc(2025, 6, 11, 1, 0))); // 21:00 EDT, 20:00 CDT
        assert_eq!(
            next_allowed(&w, &zones, utc(2025, 6, 11, 1, 0)),
            utc(2025, 6, 11, 13, 0)
        );

        // 867, Canada's north, spans five zones from Eastern to Pacific.
        let north = zones_for(&number("+18675550123"), None, NEW_YORK);
        assert_eq!(north.zones().len(), 5);
        // In January: opens at 08:00 Pacific (16:00 UTC), closes at 21:00 Eastern (02:00 UTC).
        assert_eq!(
            next_allowed(&w, &north, utc(2025, 1, 15, 2, 0)),
            utc(2025, 1, 15, 16, 0)
        );
        assert!(allowed(&w, &north, utc(2025, 1, 16, 1, 59)));
        assert!(!allowed(&w, &north, utc(2025, 1, 16, 2, 0)));
    }

    #[test]
    fn zones_that_never_share_the_window_hold_for_the_maximum() {
        let w = window("09:00", "09:30");
        let zones = zones_for(&number("+18675550123"), None, NEW_YORK);
        let at = utc(2025, 1, 15, 0, 0);
        assert_eq!(next_allowed(&w, &zones, at), at + MAX_HOLD);
    }

    // --- zones_for ----------------------------------------------------------------------------

    #[test]
    fn zones_for_prefers_stored_then_area_code_then_default() {
        let default = Tz::America__Denver;
        let ny_number = number("+12125550123");

        let stored = zones_for(&ny_number, Some(Tz::Europe__Paris), default);
        assert_eq!(stored.zones(), [Tz::Europe__Paris]);
        assert_eq!(stored.source(), ZoneSource::Stored);

        let by_area = zones_for(&ny_number, None, default);
        assert_eq!(by_area.zones(), [NEW_YORK]);
        assert_eq!(by_area.source(), ZoneSource::AreaCode);
        assert_eq!(by_area.to_string(), "America/New_York (from the area code)");

        for other in [
            "+18005550123",  // toll-free: no place
            "+15555550123",  // not an area code
            "+442079460123", // not NANP
            "+1212555012",   // +1 but nine digits
            "+121255501234", // +1 but eleven digits
        ] {
            let zones = zones_for(&number(other), None, default);
            assert_eq!(zones.zones(), [default], "{other}");
            assert_eq!(zones.source(), ZoneSource::Default, "{other}");
        }
        assert_eq!(
            Zones::one(default, ZoneSource::Default).to_string(),
            "America/Denver (business default)"
        );
        assert_eq!(ZoneSource::AreaCode.as_str(), "area_code");
    }

    #[test]
    fn zones_debug_shows_no_digits_of_the_number() {
        let zones = zones_for(&number("+19075550123"), None, NEW_YORK);
        let debug = format!("{zones:?}");
        assert!(!debug.contains("907") && !debug.contains("555"), "{debug}");
    }

    // --- exempt -------------------------------------------------------------------------------

    #[test]
    fn a_reply_within_the_hour_is_exempt() {
        let at = utc(2025, 1, 15, 23, 0);
        let window = DEFAULT_REPLY_WINDOW;
        let ago = |minutes| Some(at - TimeDelta::minutes(minutes));
        assert!(exempt(ago(0), window, at));
        assert!(exempt(ago(59), window, at));
        assert!(!exempt(ago(60), window, at));
        assert!(!exempt(ago(61), window, at));
        assert!(!exempt(None, window, at));
        // A customer message stamped in the future exempts nothing.
        assert!(!exempt(Some(at + TimeDelta::seconds(1)), window, at));
        // A window of zero exempts nothing; a longer one more.
        assert!(!exempt(ago(0), TimeDelta::zero(), at));
        assert!(exempt(ago(61), TimeDelta::minutes(90), at));
    }

    // --- properties ---------------------------------------------------------------------------

    /// Zones worth testing beyond the NANP table: half- and quarter-hour offsets, a 30-minute
    /// daylight-saving shift (Lord Howe), a 2-hour one (Troll), the date line (Apia, Kiritimati).
    const ODD_ZONES: &[Tz] = &[
        Tz::America__St_Johns,
        Tz::Pacific__Honolulu,
        Tz::America__Adak,
        Tz::Asia__Kathmandu,
        Tz::Australia__Lord_Howe,
        Tz::Antarctica__Troll,
        Tz::Pacific__Chatham,
        Tz::Pacific__Apia,
        Tz::Pacific__Kiritimati,
        Tz::Europe__London,
    ];

    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2000-01-01 to 2037-12-31, to the nanosecond: daylight-saving rules past and present.
        let start = NaiveDate::from_ymd_opt(2000, 1, 1)
            .unwrap()
            .and_time(NaiveTime::MIN);
        let span = TimeDelta::days(38 * 365).num_seconds();
        (0..span, 0..1_000_000_000u32).prop_map(move |(seconds, nanos)| {
            (start + TimeDelta::seconds(seconds) + TimeDelta::nanoseconds(i64::from(nanos)))
                .and_utc()
        })
    }

    fn any_nanp_zones() -> impl Strategy<Value = Zones> {
        (0..nanp::AREA_CODES.len()).prop_map(|index| Zones {
            zones: ZoneList::Table(nanp::AREA_CODES[index].1),
            source: ZoneSource::AreaCode,
        })
    }

    fn any_zones() -> impl Strategy<Value = Zones> {
        prop_oneof![
            any_nanp_zones(),
            proptest::sample::select(ODD_ZONES)
                .prop_map(|zone| Zones::one(zone, ZoneSource::Stored)),
        ]
    }

    fn any_window() -> impl Strategy<Value = Window> {
        (0..1440u32, 1..1440u32).prop_map(|(start, length)| {
            let end = (start + length) % 1440;
            Window::new(hm(start / 60, start % 60), hm(end / 60, end % 60)).unwrap()
        })
    }

    /// `next_allowed`'s contract, checked minute by minute.
    fn check_next_allowed(
        window: &Window,
        zones: &Zones,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, TestCaseError> {
        let next = next_allowed(window, zones, at);
        prop_assert!(next >= at, "{next} is before {at}");
        prop_assert!(
            next <= at + MAX_HOLD,
            "{next} is more than {MAX_HOLD} after {at}"
        );
        if allowed(window, zones, at) {
            prop_assert_eq!(next, at);
        } else {
            prop_assert!(
                next == at + MAX_HOLD || next == next_whole_minute(next),
                "{next} is not a whole minute"
            );
        }
        let mut minute = next_whole_minute(at);
        while minute < next {
            prop_assert!(
                !allowed(window, zones, minute),
                "{minute} is allowed, before {next}"
            );
            minute += ONE_MINUTE;
        }
        Ok(next)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn the_default_window_always_opens_within_a_day(zones in any_nanp_zones(), at in any_instant()) {
            let window = Window::default();
            let next = check_next_allowed(&window, &zones, at)?;
            prop_assert!(allowed(&window, &zones, next), "{next} is not allowed");
            prop_assert!(next - at <= TimeDelta::hours(25), "waited {} for the window", next - at);
        }

        #[test]
        fn any_window_in_any_zones(window in any_window(), zones in any_zones(), at in any_instant()) {
            let next = check_next_allowed(&window, &zones, at)?;
            if next < at + MAX_HOLD {
                prop_assert!(allowed(&window, &zones, next), "{next} is not allowed");
            }
            if zones.zones().len() == 1 {
                // One zone always opens the window within a day and its daylight-saving shift.
                prop_assert!(allowed(&window, &zones, next), "{next} is not allowed");
            }
        }
    }
}
