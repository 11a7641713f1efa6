//! Local time of the simulated sites. The API builds its buckets in each site's local time, so
//! the simulator needs real zone rules: two zones (one US, one not), their daylight-saving
//! rules computed with plain date arithmetic (no zone database, so data stays reproducible), and
//! what the autumn change does to hourly buckets.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Timelike, Utc, Weekday};

/// The zone a simulated location is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SiteZone {
    /// America/New_York: UTC−5, daylight time (UTC−4) from the second Sunday of March 02:00
    /// local to the first Sunday of November 02:00 local.
    UsEastern,
    /// Europe/Berlin: UTC+1, summer time (UTC+2) from the last Sunday of March 01:00 UTC to
    /// the last Sunday of October 01:00 UTC.
    CentralEurope,
}

/// Which local-time bucket a UTC hour belongs to. The API builds hourly buckets in the site's
/// local time (a recorded real account has no `07:00Z` row on the US fall-back day, where
/// America/Denver repeats 01:00): the repeated local hour is one bucket, labelled with the
/// start of its second occurrence, and the first occurrence has no row of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalBucket {
    /// An ordinary hour: its own bucket.
    Own,
    /// The first occurrence of the repeated hour: merged into the next bucket, no row.
    MergedIntoNext,
    /// The second occurrence: its bucket also holds the hour before it.
    HoldsPrevious,
}

impl SiteZone {
    /// The IANA name, as a location's `timezone` field carries it.
    pub fn iana_name(self) -> &'static str {
        match self {
            SiteZone::UsEastern => "America/New_York",
            SiteZone::CentralEurope => "Europe/Berlin",
        }
    }

    fn standard_offset_hours(self) -> i64 {
        match self {
            SiteZone::UsEastern => -5,
            SiteZone::CentralEurope => 1,
        }
    }

    /// `[start, end)` of daylight time in `year`, as UTC instants. `None` only for years
    /// chrono cannot represent.
    fn daylight(self, year: i32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let at = |date: NaiveDate, utc_hour: u32| {
            date.and_time(NaiveTime::from_hms_opt(utc_hour, 0, 0).unwrap_or(NaiveTime::MIN))
                .and_utc()
        };
        match self {
            // 02:00 EST = 07:00Z; 02:00 EDT = 06:00Z.
            SiteZone::UsEastern => Some((
                at(
                    NaiveDate::from_weekday_of_month_opt(year, 3, Weekday::Sun, 2)?,
                    7,
                ),
                at(
                    NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Sun, 1)?,
                    6,
                ),
            )),
            SiteZone::CentralEurope => {
                Some((at(last_sunday(year, 3)?, 1), at(last_sunday(year, 10)?, 1)))
            }
        }
    }

    /// The UTC offset, in hours, at instant `t`. No change falls near a year boundary, so the
    /// UTC year is the local year here.
    pub fn offset_hours(self, t: DateTime<Utc>) -> i64 {
        let daylight = self
            .daylight(t.year())
            .is_some_and(|(start, end)| start <= t && t < end);
        self.standard_offset_hours() + i64::from(daylight)
    }

    /// The local calendar date at instant `t`.
    pub fn local_date(self, t: DateTime<Utc>) -> NaiveDate {
        (t + Duration::hours(self.offset_hours(t))).date_naive()
    }

    /// Local midnight of `date`, as a UTC instant. Both zones change their clocks in the
    /// night's small hours, never at midnight, so midnight always exists exactly once.
    pub fn local_midnight(self, date: NaiveDate) -> DateTime<Utc> {
        let naive = date.and_time(NaiveTime::MIN).and_utc();
        let daylight = naive - Duration::hours(self.standard_offset_hours() + 1);
        if self.offset_hours(daylight) == self.standard_offset_hours() + 1 {
            daylight
        } else {
            naive - Duration::hours(self.standard_offset_hours())
        }
    }

    /// The bucket role of the UTC hour starting at `hour`.
    pub fn bucket_role(self, hour: DateTime<Utc>) -> LocalBucket {
        let hour = hour_floor(hour);
        let before = self.offset_hours(hour - Duration::hours(1));
        let this = self.offset_hours(hour);
        let after = self.offset_hours(hour + Duration::hours(1));
        // Clocks go back by one hour at the end of daylight time: the offset drops.
        if this > after {
            LocalBucket::MergedIntoNext
        } else if before > this {
            LocalBucket::HoldsPrevious
        } else {
            LocalBucket::Own
        }
    }

    /// The local hour of day at instant `t` (0–23) and whether it is a weekend day.
    pub fn local_hour_and_weekday(self, t: DateTime<Utc>) -> (u32, Weekday) {
        let local = t + Duration::hours(self.offset_hours(t));
        (local.hour(), local.weekday())
    }
}

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, 5)
        .or_else(|| NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, 4))
}

/// Start of the UTC hour containing `t`.
pub fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let floored = secs - secs.rem_euclid(3600);
    DateTime::from_timestamp(floored, 0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn both_zones_change_their_clocks_on_their_own_days() {
        let berlin = SiteZone::CentralEurope;
        assert_eq!(berlin.offset_hours(at("2025-03-30T00:59:59Z")), 1);
        assert_eq!(berlin.offset_hours(at("2025-03-30T01:00:00Z")), 2);
        assert_eq!(berlin.offset_hours(at("2025-10-26T00:59:59Z")), 2);
        assert_eq!(berlin.offset_hours(at("2025-10-26T01:00:00Z")), 1);
        let new_york = SiteZone::UsEastern;
        assert_eq!(new_york.offset_hours(at("2025-03-09T06:59:59Z")), -5);
        assert_eq!(new_york.offset_hours(at("2025-03-09T07:00:00Z")), -4);
        assert_eq!(new_york.offset_hours(at("2025-11-02T05:59:59Z")), -4);
        assert_eq!(new_york.offset_hours(at("2025-11-02T06:00:00Z")), -5);
    }

    #[test]
    fn local_midnights_and_repeated_hours() {
        let berlin = SiteZone::CentralEurope;
        assert_eq!(
            berlin.local_midnight(date("2025-01-15")),
            at("2025-01-14T23:00:00Z")
        );
        assert_eq!(
            berlin.local_midnight(date("2025-07-15")),
            at("2025-07-14T22:00:00Z")
        );
        // The autumn change day is 25 hours long, the spring one 23.
        let day = |d: &str| {
            let d = date(d);
            berlin.local_midnight(d.succ_opt().unwrap()) - berlin.local_midnight(d)
        };
        assert_eq!(day("2025-10-26"), Duration::hours(25));
        assert_eq!(day("2025-03-30"), Duration::hours(23));
        // Berlin repeats 02:00 local: 00:00Z (CEST) and 01:00Z (CET).
        assert_eq!(
            berlin.bucket_role(at("2025-10-26T00:00:00Z")),
            LocalBucket::MergedIntoNext
        );
        assert_eq!(
            berlin.bucket_role(at("2025-10-26T01:00:00Z")),
            LocalBucket::HoldsPrevious
        );
        let new_york = SiteZone::UsEastern;
        assert_eq!(
            new_york.local_midnight(date("2025-11-02")),
            at("2025-11-02T04:00:00Z")
        );
        assert_eq!(
            new_york.bucket_role(at("2025-11-02T05:00:00Z")),
            LocalBucket::MergedIntoNext
        );
        assert_eq!(
            new_york.bucket_role(at("2025-11-02T06:00:00Z")),
            LocalBucket::HoldsPrevious
        );
    }
}
