//! When a reader's digest is due: the send instants of their frequency at their hour in
//! their time zone, resolved through daylight-saving changes so that no day is skipped or
//! doubled.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc, Weekday};

use crate::domain::{Frequency, Preferences};

/// Whether a digest goes out on this local date.
fn sends_on(frequency: Frequency, date: NaiveDate) -> bool {
    match frequency {
        Frequency::Daily => true,
        Frequency::Weekdays => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        Frequency::Weekly(day) => date.weekday() == day,
    }
}

/// The instant of `hour`:00 on `date` in `tz`. An hour that occurs twice (clocks go back)
/// is taken the first time; an hour that does not occur (clocks go forward) becomes the
/// first instant after the gap, so the day still gets its digest.
pub fn send_instant(tz: chrono_tz::Tz, date: NaiveDate, hour: u8) -> DateTime<Utc> {
    let mut local = date.and_time(NaiveTime::MIN) + Duration::hours(i64::from(hour));
    // Gaps are at most a few hours (Lord Howe's is 30 minutes, most are one hour).
    for _ in 0..8 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(30);
    }
    // Unreachable for real zones; fall back to reading the wall time as UTC.
    local.and_utc()
}

/// The latest send instant at or before `now` for these preferences, if any in the last
/// eight days (there always is one for every frequency).
pub fn last_send_at_or_before(p: &Preferences, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = p.timezone.tz();
    let today = now.with_timezone(&tz).date_naive();
    (0..9)
        .filter_map(|back| today.checked_sub_signed(Duration::days(back)))
        .filter(|d| sends_on(p.frequency, *d))
        .map(|d| send_instant(tz, d, p.send_hour.get()))
        .find(|t| *t <= now)
}

/// The first send instant strictly after `after`.
pub fn next_send_after(p: &Preferences, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = p.timezone.tz();
    let start = after.with_timezone(&tz).date_naive();
    (-1..9)
        .filter_map(|ahead| start.checked_add_signed(Duration::days(ahead)))
        .filter(|d| sends_on(p.frequency, *d))
        .map(|d| send_instant(tz, d, p.send_hour.get()))
        .find(|t| *t > after)
}

/// Whether a reader whose last digest (or confirmation) was at `since` is due at `now`:
/// a send instant has passed since then. However long the gap, one digest covers it.
pub fn is_due(p: &Preferences, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    last_send_at_or_before(p, now).is_some_and(|t| t > since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MaxPapers, QueryList, SendHour, TimeZone};

    fn prefs(frequency: Frequency, hour: i64, tz: &str) -> Preferences {
        Preferences {
            queries: QueryList::default(),
            frequency,
            send_hour: SendHour::new(hour).unwrap(),
            timezone: tz.parse::<TimeZone>().unwrap(),
            max_papers: MaxPapers::DEFAULT,
            layout: Default::default(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Every send instant in `[from, to)`.
    fn sends(p: &Preferences, from: &str, to: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = utc(from) - Duration::seconds(1);
        while let Some(next) = next_send_after(p, t) {
            if next >= utc(to) {
                break;
            }
            out.push(next.to_rfc3339());
            t = next;
        }
        out
    }

    #[test]
    fn kolkata_gets_its_digest_at_half_past_in_utc() {
        let p = prefs(Frequency::Daily, 8, "Asia/Kolkata");
        assert_eq!(
            sends(&p, "2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"),
            ["2026-03-01T02:30:00+00:00", "2026-03-02T02:30:00+00:00"]
        );
    }

    #[test]
    fn new_york_keeps_eight_local_across_both_dst_changes() {
        let p = prefs(Frequency::Daily, 8, "America/New_York");
        // Clocks went forward on 2026-03-08 and back on 2026-11-01.
        assert_eq!(
            sends(&p, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
            [
                "2026-03-07T13:00:00+00:00",
                "2026-03-08T12:00:00+00:00",
                "2026-03-09T12:00:00+00:00"
            ]
        );
        assert_eq!(
            sends(&p, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
            [
                "2026-10-31T12:00:00+00:00",
                "2026-11-01T13:00:00+00:00",
                "2026-11-02T13:00:00+00:00"
            ]
        );
    }

    #[test]
    fn hours_that_are_skipped_or_doubled_still_send_once() {
        // 02:00 does not exist in New York on 2026-03-08 and 01:00 happens twice on
        // 2026-11-01.
        let gap = prefs(Frequency::Daily, 2, "America/New_York");
        assert_eq!(
            sends(&gap, "2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z"),
            ["2026-03-08T07:00:00+00:00"]
        );
        let twice = prefs(Frequency::Daily, 1, "America/New_York");
        assert_eq!(
            sends(&twice, "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
            ["2026-11-01T05:00:00+00:00"]
        );
    }

    #[test]
    fn chatham_weekdays_and_weekly() {
        // Chatham is UTC+13:45 in (southern) summer.
        let p = prefs(Frequency::Weekdays, 9, "Pacific/Chatham");
        let got = sends(&p, "2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z");
        // 09:00 on local Fri 2, Mon 5, Tue 6, Wed 7 and Thu 8 January; Thu 1 January's
        // was still 31 December in UTC.
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got.iter().all(|t| t.ends_with("19:15:00+00:00")), "{got:?}");
        let weekly = prefs(Frequency::Weekly(Weekday::Sun), 9, "Pacific/Chatham");
        assert_eq!(
            sends(&weekly, "2026-01-01T00:00:00Z", "2026-01-15T00:00:00Z").len(),
            2
        );
    }

    #[test]
    fn after_an_outage_one_digest_covers_the_gap() {
        let p = prefs(Frequency::Daily, 8, "UTC");
        let last = utc("2026-05-01T08:00:00Z");
        let now = utc("2026-05-04T09:00:00Z");
        assert!(is_due(&p, last, now));
        assert_eq!(
            last_send_at_or_before(&p, now),
            Some(utc("2026-05-04T08:00:00Z"))
        );
        // Once sent at the latest instant, it is not due again until the next one.
        assert!(!is_due(&p, utc("2026-05-04T08:00:00Z"), now));
        assert!(!is_due(&p, now, utc("2026-05-05T07:59:59Z")));
        assert!(is_due(&p, now, utc("2026-05-05T08:00:00Z")));
    }
}
