//! The fields of the subscribe and preferences forms: what was posted, how it is checked
//! into [`Preferences`] (with a message per field), and the choices the form offers.

use serde::Deserialize;

use crate::domain::query::QueryListError;
use crate::domain::{
    DigestLayout, EmailAddress, Frequency, MaxPapers, Preferences, QueryList, SendHour, TimeZone,
    weekday_code, weekdays,
};

/// Everything either form may post; absent fields are empty.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FormFields {
    pub email: String,
    pub queries: String,
    pub frequency: String,
    pub day: String,
    pub send_hour: String,
    pub timezone: String,
    pub max_papers: String,
    /// Set by forms that carry the layout checkboxes (an unticked box posts nothing).
    pub layout: String,
    /// "on" when ticked.
    pub group_by_query: String,
    pub suggestions: String,
    /// The honeypot: hidden from people, filled in by bots.
    pub website: String,
    pub csrf: String,
    /// Which button of the preferences page was pressed.
    pub action: String,
}

impl FormFields {
    /// The fields showing a reader's current preferences.
    pub fn from_preferences(p: &Preferences) -> Self {
        FormFields {
            queries: p.queries.to_text(),
            frequency: p.frequency.kind().into(),
            day: p.frequency.day().map(weekday_code).unwrap_or("mon").into(),
            send_hour: p.send_hour.get().to_string(),
            timezone: p.timezone.name().into(),
            max_papers: p.max_papers.get().to_string(),
            layout: "1".into(),
            group_by_query: tick(p.layout.group_by_query),
            suggestions: tick(p.layout.suggestions),
            ..FormFields::default()
        }
    }

    /// A blank subscribe form with the defaults filled in.
    pub fn blank() -> Self {
        FormFields::from_preferences(&Preferences::default())
    }

    /// Checks the email address. `utf8_local_parts` says whether mail can go to a local
    /// part that is not ASCII (the relay announced SMTPUTF8); when it cannot, such an
    /// address is refused here rather than stored and never mailed.
    pub fn email(&self, errors: &mut FieldErrors, utf8_local_parts: bool) -> Option<EmailAddress> {
        let email = EmailAddress::parse(&self.email)
            .map_err(|e| errors.set(|f| &mut f.email, e.to_string()))
            .ok()?;
        if email.needs_smtputf8() && !utf8_local_parts {
            errors.set(
                |f| &mut f.email,
                "This server's mail relay cannot deliver to an address with letters other than \
                 a-z, digits and punctuation before the @. Please use another address."
                    .into(),
            );
            return None;
        }
        Some(email)
    }

    /// Checks every setting; each refusal is filed under its field.
    pub fn preferences(&self, errors: &mut FieldErrors) -> Option<Preferences> {
        let queries = QueryList::parse(&self.queries)
            .map_err(|e| errors.queries(&e))
            .ok();
        let frequency = Frequency::from_parts(&self.frequency, &self.day)
            .map_err(|e| errors.set(|f| &mut f.frequency, e.to_string()))
            .ok();
        let send_hour = self
            .send_hour
            .parse::<SendHour>()
            .map_err(|e| errors.set(|f| &mut f.send_hour, e.to_string()))
            .ok();
        let timezone = self
            .timezone
            .parse::<TimeZone>()
            .map_err(|e| errors.set(|f| &mut f.timezone, e.to_string()))
            .ok();
        let max_papers = self
            .max_papers
            .parse::<MaxPapers>()
            .map_err(|e| errors.set(|f| &mut f.max_papers, e.to_string()))
            .ok();
        Some(Preferences {
            queries: queries?,
            frequency: frequency?,
            send_hour: send_hour?,
            timezone: timezone?,
            max_papers: max_papers?,
            layout: self.layout(),
        })
    }

    /// The layout checkboxes; the defaults when the form did not carry them.
    fn layout(&self) -> DigestLayout {
        if self.layout.is_empty() {
            return DigestLayout::default();
        }
        DigestLayout {
            group_by_query: !self.group_by_query.is_empty(),
            suggestions: !self.suggestions.is_empty(),
        }
    }
}

fn tick(on: bool) -> String {
    if on { "on".into() } else { String::new() }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A message per refused field.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    pub any: bool,
    pub email: Option<String>,
    pub queries: Option<String>,
    /// Each bad query line, when more than one is bad (`queries` then introduces them).
    pub query_lines: Vec<String>,
    pub frequency: Option<String>,
    pub send_hour: Option<String>,
    pub timezone: Option<String>,
    pub max_papers: Option<String>,
}

impl FieldErrors {
    fn set(&mut self, field: impl Fn(&mut Self) -> &mut Option<String>, message: String) {
        self.any = true;
        *field(self) = Some(message);
    }

    /// Files every bad line of the queries: one message for one line, a list for several.
    fn queries(&mut self, error: &QueryListError) {
        match error {
            QueryListError::Lines(lines) if lines.len() > 1 => {
                self.query_lines = lines.iter().map(|l| capitalise(&l.to_string())).collect();
                let intro = format!("{} lines need a fix:", lines.len());
                self.set(|f| &mut f.queries, intro);
            }
            _ => self.set(|f| &mut f.queries, capitalise(&error.to_string())),
        }
    }
}

/// One option of a select or radio group.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// What the form offers, with the posted (or stored) values selected.
#[derive(Debug, Clone)]
pub struct Choices {
    pub frequencies: Vec<Choice>,
    pub days: Vec<Choice>,
    pub hours: Vec<Choice>,
    /// The offered zones by region; the first group, unlabelled, holds UTC and a stored
    /// zone the list no longer offers (an alias such as US/Eastern).
    pub timezones: Vec<ZoneGroup>,
    /// Let the page's script set the browser's time zone (a fresh form only).
    pub detect_timezone: bool,
}

/// The zones of one region, shown as an `<optgroup>`.
#[derive(Debug, Clone)]
pub struct ZoneGroup {
    /// Empty for the group shown above the regions.
    pub region: String,
    pub zones: Vec<Choice>,
}

/// The offered zones grouped by region, with `current` selected; a zone that parses but
/// is not offered any more is kept on top so that saving the form does not change it.
fn zone_groups(current: &str) -> Vec<ZoneGroup> {
    let current = current.trim();
    let mut groups = vec![ZoneGroup {
        region: String::new(),
        zones: Vec::new(),
    }];
    if let Ok(tz) = current.parse::<TimeZone>()
        && !tz.is_offered()
    {
        groups[0].zones.push(Choice {
            value: tz.name().into(),
            label: tz.name().into(),
            selected: true,
        });
    }
    for name in TimeZone::offered() {
        let zone = Choice {
            value: name.into(),
            label: name.into(),
            selected: name.eq_ignore_ascii_case(current),
        };
        let region = TimeZone::region(name).unwrap_or_default();
        match groups.last_mut() {
            Some(group) if group.region == region => group.zones.push(zone),
            _ if region.is_empty() => groups[0].zones.push(zone),
            _ => groups.push(ZoneGroup {
                region: region.into(),
                zones: vec![zone],
            }),
        }
    }
    groups
}

impl Choices {
    pub fn for_form(form: &FormFields, detect_timezone: bool) -> Self {
        let choice = |value: &str, label: &str, current: &str| Choice {
            value: value.into(),
            label: label.into(),
            selected: value.eq_ignore_ascii_case(current.trim()),
        };
        let frequency = if form.frequency.is_empty() {
            "daily"
        } else {
            &form.frequency
        };
        Choices {
            frequencies: [
                ("daily", "Daily"),
                ("weekdays", "Weekdays"),
                ("weekly", "Weekly"),
            ]
            .iter()
            .map(|(v, l)| choice(v, l, frequency))
            .collect(),
            days: weekdays().map(|(v, l)| choice(v, l, &form.day)).collect(),
            hours: (0..24)
                .map(|h| choice(&h.to_string(), &format!("{h:02}:00"), &form.send_hour))
                .collect(),
            timezones: zone_groups(&form.timezone),
            detect_timezone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_gets_its_own_message() {
        let form = FormFields {
            email: "not an address".into(),
            queries: "ok\ntitle:(\"unclosed".into(),
            frequency: "hourly".into(),
            send_hour: "25".into(),
            timezone: "Mars/Base".into(),
            max_papers: "0".into(),
            ..FormFields::default()
        };
        let mut errors = FieldErrors::default();
        assert!(form.email(&mut errors, true).is_none());
        assert!(form.preferences(&mut errors).is_none());
        assert!(errors.any);
        for (name, e) in [
            ("email", &errors.email),
            ("queries", &errors.queries),
            ("frequency", &errors.frequency),
            ("send_hour", &errors.send_hour),
            ("timezone", &errors.timezone),
            ("max_papers", &errors.max_papers),
        ] {
            assert!(e.is_some(), "{name} has no message");
        }
        assert!(errors.queries.unwrap().starts_with("Line 2:"));
        assert!(errors.query_lines.is_empty(), "one bad line needs no list");
    }

    #[test]
    fn a_utf8_local_part_needs_a_relay_that_takes_it() {
        let form = FormFields {
            email: "用户@example.org".into(),
            ..FormFields::blank()
        };
        let mut errors = FieldErrors::default();
        assert!(form.email(&mut errors, true).is_some());
        assert!(!errors.any);
        assert!(form.email(&mut errors, false).is_none());
        assert!(errors.email.unwrap().contains("before the @"));
        let idn = FormFields {
            email: "ada@bücher.de".into(),
            ..FormFields::blank()
        };
        let mut errors = FieldErrors::default();
        assert!(
            idn.email(&mut errors, false).is_some(),
            "a Unicode domain goes out in A-labels"
        );
    }

    #[test]
    fn every_bad_query_line_is_named_with_its_position() {
        let form = FormFields {
            queries: "diffusion\ntitle:(\"unclosed\nok\nrobot OR\n\n-survey".into(),
            ..FormFields::blank()
        };
        let mut errors = FieldErrors::default();
        assert!(form.preferences(&mut errors).is_none());
        assert_eq!(errors.queries.as_deref(), Some("3 lines need a fix:"));
        assert_eq!(
            errors.query_lines,
            [
                "Line 2: unclosed quote at 8",
                "Line 4: nothing after OR at 7",
                "Line 6: the query only excludes at 1, add a word to look for, as in \"diffusion -survey\"",
            ]
        );
    }

    #[test]
    fn the_blank_form_is_valid_and_round_trips() {
        let mut errors = FieldErrors::default();
        let p = FormFields::blank().preferences(&mut errors).unwrap();
        assert_eq!(p, Preferences::default());
        assert!(!errors.any);
        let choices = Choices::for_form(&FormFields::blank(), true);
        assert_eq!(choices.frequencies.iter().filter(|c| c.selected).count(), 1);
        assert_eq!(choices.hours.iter().filter(|c| c.selected).count(), 1);
        assert_eq!(zones_selected(&choices), ["UTC"]);
    }

    fn zones_selected(choices: &Choices) -> Vec<&str> {
        choices
            .timezones
            .iter()
            .flat_map(|g| &g.zones)
            .filter(|z| z.selected)
            .map(|z| z.value.as_str())
            .collect()
    }

    #[test]
    fn zones_come_by_region_and_a_stored_alias_stays_selected() {
        let form = |timezone: &str| FormFields {
            timezone: timezone.into(),
            ..FormFields::blank()
        };
        let choices = Choices::for_form(&form("europe/berlin"), false);
        assert_eq!(zones_selected(&choices), ["Europe/Berlin"]);
        let regions: Vec<&str> = choices
            .timezones
            .iter()
            .map(|g| g.region.as_str())
            .collect();
        assert_eq!(
            regions,
            [
                "",
                "Africa",
                "America",
                "Antarctica",
                "Arctic",
                "Asia",
                "Atlantic",
                "Australia",
                "Europe",
                "Indian",
                "Pacific"
            ]
        );
        for group in &choices.timezones[1..] {
            let prefix = format!("{}/", group.region);
            assert!(group.zones.iter().all(|z| z.value.starts_with(&prefix)));
        }
        let choices = Choices::for_form(&form("US/Eastern"), false);
        assert_eq!(zones_selected(&choices), ["US/Eastern"]);
        assert_eq!(choices.timezones[0].zones.len(), 2, "the alias and UTC");
        let choices = Choices::for_form(&form("Mars/Base"), false);
        assert!(zones_selected(&choices).is_empty());
    }
}
