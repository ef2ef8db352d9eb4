//! What a reader chooses: queries, how often, at what hour in which time zone, and how
//! many papers. Each value is checked once here, whether it comes from the web form, the
//! CLI or the database.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc, Weekday};
use serde::Serialize;

use super::query::{Query, QueryListError, parse_lines};
use super::{EmailAddress, Invalid};

/// How often a reader gets a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frequency {
    Daily,
    /// Monday to Friday.
    Weekdays,
    Weekly(Weekday),
}

const DAYS: [(Weekday, &str, &str); 7] = [
    (Weekday::Mon, "mon", "Monday"),
    (Weekday::Tue, "tue", "Tuesday"),
    (Weekday::Wed, "wed", "Wednesday"),
    (Weekday::Thu, "thu", "Thursday"),
    (Weekday::Fri, "fri", "Friday"),
    (Weekday::Sat, "sat", "Saturday"),
    (Weekday::Sun, "sun", "Sunday"),
];

/// `mon` … `sun` (also the full English names), case-insensitive.
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    let s = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .find(|(_, short, long)| s == *short || s == long.to_ascii_lowercase())
        .map(|(d, _, _)| *d)
}

/// The short name used in storage and forms: `mon` … `sun`.
pub fn weekday_code(day: Weekday) -> &'static str {
    DAYS[day.num_days_from_monday() as usize].1
}

/// The English name: `Monday` … `Sunday`.
pub fn weekday_name(day: Weekday) -> &'static str {
    DAYS[day.num_days_from_monday() as usize].2
}

/// Every day of the week, Monday first: `(code, name)`.
pub fn weekdays() -> impl Iterator<Item = (&'static str, &'static str)> {
    DAYS.iter().map(|(_, code, name)| (*code, *name))
}

impl Frequency {
    /// `daily`, `weekdays`, or `weekly:mon` … `weekly:sun`: the stored form.
    pub fn as_code(&self) -> String {
        match self {
            Frequency::Daily => "daily".into(),
            Frequency::Weekdays => "weekdays".into(),
            Frequency::Weekly(day) => format!("weekly:{}", weekday_code(*day)),
        }
    }

    /// The kind without the day: `daily`, `weekdays` or `weekly`.
    pub fn kind(&self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekdays => "weekdays",
            Frequency::Weekly(_) => "weekly",
        }
    }

    /// The day of a weekly digest.
    pub fn day(&self) -> Option<Weekday> {
        match self {
            Frequency::Weekly(day) => Some(*day),
            _ => None,
        }
    }

    /// Builds a frequency from the form's two fields: the kind and, for weekly, the day.
    pub fn from_parts(kind: &str, day: &str) -> Result<Self, Invalid> {
        match kind.trim().to_ascii_lowercase().as_str() {
            "daily" => Ok(Frequency::Daily),
            "weekdays" => Ok(Frequency::Weekdays),
            "weekly" => {
                let day = if day.trim().is_empty() {
                    Weekday::Mon
                } else {
                    parse_weekday(day)
                        .ok_or_else(|| Invalid::new(format!("{day:?} is not a day of the week")))?
                };
                Ok(Frequency::Weekly(day))
            }
            other => Err(Invalid::new(format!(
                "{other:?} is not a frequency: choose daily, weekdays or weekly"
            ))),
        }
    }
}

impl FromStr for Frequency {
    type Err = Invalid;

    /// `daily`, `weekdays`, `weekly` (on Monday) or `weekly:DAY`.
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s.split_once(':') {
            Some((kind, day)) if kind.trim().eq_ignore_ascii_case("weekly") => {
                if day.trim().is_empty() {
                    return Err(Invalid::new(format!("{s:?}: weekly:DAY needs a day")));
                }
                Frequency::from_parts("weekly", day)
            }
            Some(_) => Err(Invalid::new(format!(
                "{s:?} is not a frequency: choose daily, weekdays or weekly:DAY"
            ))),
            None => Frequency::from_parts(s, ""),
        }
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frequency::Daily => f.write_str("every day"),
            Frequency::Weekdays => f.write_str("every weekday"),
            Frequency::Weekly(day) => write!(f, "every {}", weekday_name(*day)),
        }
    }
}

impl Serialize for Frequency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_code())
    }
}

/// The hour of the day, 0 to 23, at which the digest is sent in the reader's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SendHour(u8);

impl SendHour {
    pub fn new(hour: i64) -> Result<Self, Invalid> {
        u8::try_from(hour)
            .ok()
            .filter(|h| *h < 24)
            .map(SendHour)
            .ok_or_else(|| Invalid::new(format!("{hour} is not an hour from 0 to 23")))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl FromStr for SendHour {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let hour: i64 = s
            .trim()
            .parse()
            .map_err(|_| Invalid::new(format!("{s:?} is not an hour from 0 to 23")))?;
        SendHour::new(hour)
    }
}

/// An IANA time zone such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(chrono_tz::Tz);

const OFFERED_ZONES: &str = include_str!("zones.txt");

impl TimeZone {
    pub fn utc() -> Self {
        TimeZone(chrono_tz::UTC)
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The zones the forms offer: UTC, then IANA's zone.tab in alphabetical order. Any
    /// other name chrono-tz knows (an alias such as US/Eastern) still parses, so a reader
    /// stored with one keeps it.
    pub fn offered() -> impl Iterator<Item = &'static str> {
        std::iter::once("UTC").chain(
            OFFERED_ZONES
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        )
    }

    /// Whether the forms list this zone.
    pub fn is_offered(&self) -> bool {
        TimeZone::offered().any(|name| name == self.name())
    }

    /// The part of the name before the first `/` (`America` for
    /// America/Argentina/Buenos_Aires); none for UTC.
    pub fn region(name: &str) -> Option<&str> {
        name.split_once('/').map(|(region, _)| region)
    }
}

impl FromStr for TimeZone {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        chrono_tz::Tz::from_str(s)
            .ok()
            .or_else(|| {
                chrono_tz::TZ_VARIANTS
                    .iter()
                    .copied()
                    .find(|tz| tz.name().eq_ignore_ascii_case(s))
            })
            .map(TimeZone)
            .ok_or(())
            .map_err(|_| {
                Invalid::new(format!(
                    "{s:?} is not a time zone; use a name such as Europe/Berlin"
                ))
            })
    }
}

impl Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// How many papers a digest lists before "and K more".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MaxPapers(u8);

impl MaxPapers {
    pub const DEFAULT: MaxPapers = MaxPapers(15);
    pub const MAX: i64 = 100;

    pub fn new(n: i64) -> Result<Self, Invalid> {
        if (1..=Self::MAX).contains(&n) {
            Ok(MaxPapers(n as u8))
        } else {
            Err(Invalid::new(format!(
                "{n} papers: choose from 1 to {}",
                Self::MAX
            )))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl FromStr for MaxPapers {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let n: i64 = s
            .trim()
            .parse()
            .map_err(|_| Invalid::new(format!("{s:?} is not a number of papers")))?;
        MaxPapers::new(n)
    }
}

/// A reader's queries: each line parsed by the query language, kept as typed. Empty means
/// the trending digest (the most upvoted papers of the period).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryList {
    lines: Vec<String>,
}

impl QueryList {
    /// One query per line; blank lines are dropped. Refuses a bad query (with its line and
    /// position) or too many.
    pub fn parse(text: &str) -> Result<Self, QueryListError> {
        parse_lines(text)?;
        Ok(QueryList {
            lines: text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The stored form: one query per line.
    pub fn to_text(&self) -> String {
        self.lines.join("\n")
    }

    /// The compiled queries, in order.
    pub fn compile(&self) -> Vec<Query> {
        // Every line parsed when the list was built.
        self.lines
            .iter()
            .filter_map(|l| Query::parse(l).ok())
            .collect()
    }
}

impl Serialize for QueryList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.lines.serialize(s)
    }
}

/// Everything a reader sets, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preferences {
    pub queries: QueryList,
    pub frequency: Frequency,
    pub send_hour: SendHour,
    pub timezone: TimeZone,
    pub max_papers: MaxPapers,
    pub layout: DigestLayout,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            queries: QueryList::default(),
            frequency: Frequency::Daily,
            send_hour: SendHour(8),
            timezone: TimeZone::utc(),
            max_papers: MaxPapers::DEFAULT,
            layout: DigestLayout::default(),
        }
    }
}

/// How a reader's digest is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DigestLayout {
    /// One section per query, each with its count and "K more", instead of one list.
    pub group_by_query: bool,
    /// A "You might also like" section from the learned taste, once there is enough of it.
    pub suggestions: bool,
}

impl Default for DigestLayout {
    fn default() -> Self {
        DigestLayout {
            group_by_query: false,
            suggestions: true,
        }
    }
}

/// A reader's verdict on a paper: show more like it, or less.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    More,
    Less,
}

impl Rating {
    pub fn is_more(self) -> bool {
        self == Rating::More
    }

    pub fn from_more(more: bool) -> Rating {
        if more { Rating::More } else { Rating::Less }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rating::More => "more",
            Rating::Less => "less",
        }
    }
}

/// Where a rating came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RatingSource {
    /// The buttons on a digest's page.
    Digest,
    Preferences,
    /// `paperboy subscribers rate`.
    Operator,
    /// Papers the reader said they like (`subscribers like`, the preferences page).
    Import,
}

impl RatingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RatingSource::Digest => "digest",
            RatingSource::Preferences => "preferences",
            RatingSource::Operator => "operator",
            RatingSource::Import => "import",
        }
    }
}

impl FromStr for RatingSource {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "digest" => RatingSource::Digest,
            "preferences" => RatingSource::Preferences,
            "operator" => RatingSource::Operator,
            "import" => RatingSource::Import,
            other => return Err(Invalid::new(format!("unknown rating source {other:?}"))),
        })
    }
}

/// Where a reader stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// Asked, not yet confirmed: gets nothing but the confirmation email.
    Pending,
    Active,
    /// Confirmed, digests stopped by the reader for now.
    Paused,
    Unsubscribed,
    /// The address bounced hard; nothing is sent to it.
    Bounced,
}

impl SubscriberStatus {
    /// Whether digests are composed for the reader: confirmed, and not gone. A paused
    /// reader's are held, not dropped, so their feed and previews stay open.
    pub fn gets_digests(self) -> bool {
        matches!(self, SubscriberStatus::Active | SubscriberStatus::Paused)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            SubscriberStatus::Pending => "pending",
            SubscriberStatus::Active => "active",
            SubscriberStatus::Paused => "paused",
            SubscriberStatus::Unsubscribed => "unsubscribed",
            SubscriberStatus::Bounced => "bounced",
        }
    }
}

impl FromStr for SubscriberStatus {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Ok(match s {
            "pending" => SubscriberStatus::Pending,
            "active" => SubscriberStatus::Active,
            "paused" => SubscriberStatus::Paused,
            "unsubscribed" => SubscriberStatus::Unsubscribed,
            "bounced" => SubscriberStatus::Bounced,
            other => return Err(Invalid::new(format!("{other:?} is not a status"))),
        })
    }
}

impl fmt::Display for SubscriberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subscriber as stored: who, their preferences and status, and where their digest
/// windows stand.
#[derive(Debug, Clone, Serialize)]
pub struct Subscriber {
    pub id: i64,
    pub email: EmailAddress,
    pub status: SubscriberStatus,
    pub preferences: Preferences,
    /// Mixed into every signed link; never shown.
    #[serde(skip)]
    pub link_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub link_sent_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub unsubscribed_at: Option<DateTime<Utc>>,
    /// Every paper with a higher id is new to this reader (see the digest window rule).
    pub paper_cursor: i64,
    /// When the reader's last digest window ended (set on confirmation too).
    pub last_window_end: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frequencies_round_trip_through_their_stored_form() {
        for f in [
            Frequency::Daily,
            Frequency::Weekdays,
            Frequency::Weekly(Weekday::Thu),
            Frequency::Weekly(Weekday::Sun),
        ] {
            assert_eq!(f.as_code().parse::<Frequency>().unwrap(), f);
        }
        assert_eq!(
            "weekly".parse::<Frequency>().unwrap(),
            Frequency::Weekly(Weekday::Mon)
        );
        assert_eq!(
            Frequency::from_parts("Weekly", "friday").unwrap(),
            Frequency::Weekly(Weekday::Fri)
        );
        assert!("hourly".parse::<Frequency>().is_err());
        assert!("weekly:".parse::<Frequency>().is_err());
        assert!("weekly:someday".parse::<Frequency>().is_err());
        assert!("daily:mon".parse::<Frequency>().is_err());
    }

    #[test]
    fn hours_zones_and_counts_are_bounded() {
        assert_eq!("0".parse::<SendHour>().unwrap().get(), 0);
        assert_eq!("23".parse::<SendHour>().unwrap().get(), 23);
        assert!("24".parse::<SendHour>().is_err());
        assert!("-1".parse::<SendHour>().is_err());
        assert!("8am".parse::<SendHour>().is_err());
        assert_eq!(
            "Asia/Kolkata".parse::<TimeZone>().unwrap().name(),
            "Asia/Kolkata"
        );
        assert_eq!(
            "europe/berlin".parse::<TimeZone>().unwrap().name(),
            "Europe/Berlin"
        );
        assert!("Mars/Olympus".parse::<TimeZone>().is_err());
    }

    #[test]
    fn the_offered_zones_are_known_and_aliases_still_parse() {
        let offered: Vec<&str> = TimeZone::offered().collect();
        assert!((400..450).contains(&offered.len()), "{}", offered.len());
        for name in &offered {
            let tz: TimeZone = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(tz.name(), *name);
            assert!(tz.is_offered());
        }
        for alias in [
            "Africa/Asmera",
            "US/Eastern",
            "Asia/Calcutta",
            "GMT",
            "Etc/UTC",
        ] {
            assert!(!offered.contains(&alias), "{alias} is offered");
            let tz: TimeZone = alias.parse().unwrap_or_else(|e| panic!("{alias}: {e}"));
            assert!(!tz.is_offered());
        }
        assert_eq!(TimeZone::region("America/Argentina/Salta"), Some("America"));
        assert_eq!(TimeZone::region("UTC"), None);
        assert!("1".parse::<MaxPapers>().is_ok());
        assert!("0".parse::<MaxPapers>().is_err());
        assert!("101".parse::<MaxPapers>().is_err());
    }

    #[test]
    fn query_lists_keep_the_lines_and_refuse_bad_ones() {
        let q = QueryList::parse("diffusion\n\n  \"state space model\"  \ncat:cs.LG -survey\n")
            .unwrap();
        assert_eq!(
            q.lines(),
            ["diffusion", "\"state space model\"", "cat:cs.LG -survey"]
        );
        assert_eq!(q.compile().len(), 3);
        assert!(QueryList::parse("").unwrap().is_empty());
        let err = QueryList::parse("ok\n\"unclosed").unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        let many = "x\n".repeat(21);
        assert!(QueryList::parse(&many).is_err());
    }

    proptest! {
        #[test]
        fn any_stored_frequency_parses_back(day in 0u8..7, kind in 0u8..3) {
            let f = match kind {
                0 => Frequency::Daily,
                1 => Frequency::Weekdays,
                _ => Frequency::Weekly(Weekday::try_from(day).unwrap()),
            };
            prop_assert_eq!(f.as_code().parse::<Frequency>().unwrap(), f);
        }

        #[test]
        fn hours_parse_only_within_the_day(h in -100i64..100) {
            prop_assert_eq!(SendHour::new(h).is_ok(), (0..24).contains(&h));
        }
    }
}
