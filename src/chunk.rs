//! Pure date-range planning: which `[start, end)` day windows a sync requests,
//! in which order, for each time-series table. No IO, no clock: the caller
//! passes today's date.

use std::fmt;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeDelta, Utc};

use crate::schema::{Grouping, Table};

/// A non-empty window of whole UTC days, `start` inclusive, `end` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateRange {
    start: NaiveDate,
    end: NaiveDate,
}

impl DateRange {
    /// A window; `None` unless `start < end`.
    pub fn new(start: NaiveDate, end: NaiveDate) -> Option<Self> {
        (start < end).then_some(Self { start, end })
    }

    /// First day in the window.
    pub fn start(self) -> NaiveDate {
        self.start
    }

    /// First day after the window.
    pub fn end(self) -> NaiveDate {
        self.end
    }

    /// Last day in the window.
    pub fn last_day(self) -> NaiveDate {
        // `start < end`, so the day before `end` exists.
        self.end.pred_opt().unwrap_or(self.start)
    }

    /// Number of days in the window.
    pub fn days(self) -> i64 {
        (self.end - self.start).num_days()
    }

    /// The first instant of the window: midnight UTC of its first day.
    pub fn start_instant(self) -> DateTime<Utc> {
        self.start.and_time(NaiveTime::MIN).and_utc()
    }

    /// The first instant after the window: midnight UTC of `end`.
    pub fn end_instant(self) -> DateTime<Utc> {
        self.end.and_time(NaiveTime::MIN).and_utc()
    }

    /// The inclusive lower bound as an explicit UTC instant, as the API wants it.
    pub fn start_utc(self) -> String {
        api_instant(self.start_instant())
    }

    /// The exclusive upper bound as an explicit UTC instant.
    pub fn end_utc(self) -> String {
        api_instant(self.end_instant())
    }

    /// An instant `secs` seconds after the window's end, as an explicit UTC
    /// instant (a request that reads on past the window).
    pub fn end_utc_after(self, secs: i64) -> String {
        let end = self.end_instant();
        api_instant(
            end.checked_add_signed(TimeDelta::seconds(secs))
                .unwrap_or(end),
        )
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`: explicit UTC bounds, which the API honours exactly.
fn api_instant(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Days `[from, through]` (UTC, inclusive) of one table whose records have all
/// been sent before a checkpoint: what planning starts from, and what the
/// sync state stores per table. `through` is the last synced day, which was
/// partial when read and is read again on the next sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// First synced day.
    pub from: NaiveDate,
    /// Last synced day.
    pub through: NaiveDate,
}

/// Whether a chunk extends coverage into the past or towards today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Fills history before what was synced (after `start_date` moved earlier).
    Backfill,
    /// Re-reads the trailing window and moves on to today.
    Forward,
}

/// One API request and the checkpoint that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedChunk {
    /// The table it fills.
    pub table: Table,
    /// The days it requests.
    pub range: DateRange,
    /// How its checkpoint moves the table's coverage.
    pub direction: Direction,
}

/// What planning needs to know about the configuration and the clock.
#[derive(Clone, Copy, Debug)]
pub struct PlanSettings {
    /// First day of history.
    pub start_date: NaiveDate,
    /// Today (UTC): the last day requested, partial.
    pub today: NaiveDate,
    /// Days re-read before the last synced day.
    pub lookback_days: u32,
    /// Days per chunk, at least 1.
    pub chunk_days: u32,
}

/// Plans the chunks for one table from its coverage so far.
///
/// - No coverage: `start_date` through today, oldest first.
/// - `start_date` before the coverage: the gap, newest first, so the coverage
///   stays one contiguous interval after every checkpoint.
/// - Then from the last synced day minus `lookback_days` through today: the
///   last synced day is always read again, because it was partial.
pub fn plan_table(
    table: Table,
    coverage: Option<Coverage>,
    settings: PlanSettings,
) -> Vec<PlannedChunk> {
    let horizon = settings
        .today
        .checked_add_days(Days::new(1))
        .unwrap_or(settings.today);
    let step = Days::new(u64::from(settings.chunk_days.max(1)));
    let mut chunks = Vec::new();

    let forward_from = match coverage {
        None => settings.start_date,
        Some(coverage) => {
            let mut gap_end = coverage.from;
            while gap_end > settings.start_date {
                let gap_start = gap_end
                    .checked_sub_days(step)
                    .map_or(settings.start_date, |day| day.max(settings.start_date));
                if let Some(range) = DateRange::new(gap_start, gap_end) {
                    chunks.push(PlannedChunk {
                        table,
                        range,
                        direction: Direction::Backfill,
                    });
                }
                gap_end = gap_start;
            }
            resume_day(table, coverage.through, settings.lookback_days).max(settings.start_date)
        }
    };

    let mut chunk_start = forward_from;
    while chunk_start < horizon {
        let chunk_end = chunk_start
            .checked_add_days(step)
            .map_or(horizon, |day| day.min(horizon));
        if let Some(range) = DateRange::new(chunk_start, chunk_end) {
            chunks.push(PlannedChunk {
                table,
                range,
                direction: Direction::Forward,
            });
        }
        chunk_start = chunk_end;
    }
    chunks
}

/// The first day a sync re-reads after coverage through `through`: `lookback_days`
/// before it, counted in the table's buckets where those are longer than a day. Day and
/// month buckets of sites east of UTC start the evening before their local date, so they
/// go back one more day; a month table goes back to the start of the month `lookback_days`
/// months before, so the month still in progress is always read again.
fn resume_day(table: Table, through: NaiveDate, lookback_days: u32) -> NaiveDate {
    let days_back = |date: NaiveDate, days: u32| {
        date.checked_sub_days(Days::new(days.into()))
            .unwrap_or(date)
    };
    let resume = days_back(through, lookback_days);
    match table.grouping() {
        Some(Grouping::Day) => days_back(resume, 1),
        Some(Grouping::Month) => {
            let month_start = through
                .with_day(1)
                .and_then(|first| first.checked_sub_months(Months::new(lookback_days)))
                .unwrap_or(through);
            days_back(resume.min(month_start), 1)
        }
        _ => resume,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn settings(start: &str, today: &str, lookback_days: u32, chunk_days: u32) -> PlanSettings {
        PlanSettings {
            start_date: day(start),
            today: day(today),
            lookback_days,
            chunk_days,
        }
    }

    #[track_caller]
    fn check(coverage: Option<(&str, &str)>, settings: PlanSettings, expected: &[&str]) {
        let coverage = coverage.map(|(from, through)| Coverage {
            from: day(from),
            through: day(through),
        });
        let planned: Vec<String> = plan_table(Table::Traffic, coverage, settings)
            .iter()
            .map(|chunk| {
                let arrow = match chunk.direction {
                    Direction::Backfill => "<",
                    Direction::Forward => ">",
                };
                format!("{arrow}{}", chunk.range)
            })
            .collect();
        assert_eq!(planned, expected);
    }

    #[test]
    fn fresh_sync_covers_start_date_through_today_in_chunks() {
        check(
            None,
            settings("2025-01-01", "2025-03-05", 1, 30),
            &[
                ">2025-01-01..2025-01-31",
                ">2025-01-31..2025-03-02",
                ">2025-03-02..2025-03-06",
            ],
        );
    }

    #[test]
    fn fresh_sync_starting_today_reads_today_only() {
        check(
            None,
            settings("2025-03-05", "2025-03-05", 1, 30),
            &[">2025-03-05..2025-03-06"],
        );
    }

    #[test]
    fn resumed_sync_rereads_the_last_day_and_the_lookback() {
        check(
            Some(("2025-01-01", "2025-03-05")),
            settings("2025-01-01", "2025-03-05", 1, 30),
            &[">2025-03-04..2025-03-06"],
        );
        check(
            Some(("2025-01-01", "2025-03-05")),
            settings("2025-01-01", "2025-03-07", 0, 30),
            &[">2025-03-05..2025-03-08"],
        );
    }

    #[test]
    fn earlier_start_date_backfills_the_gap_newest_first() {
        check(
            Some(("2025-02-01", "2025-03-05")),
            settings("2025-01-01", "2025-03-05", 1, 14),
            &[
                "<2025-01-18..2025-02-01",
                "<2025-01-04..2025-01-18",
                "<2025-01-01..2025-01-04",
                ">2025-03-04..2025-03-06",
            ],
        );
    }

    #[test]
    fn later_start_date_never_reads_before_it() {
        check(
            Some(("2025-01-01", "2025-01-10")),
            settings("2025-02-01", "2025-02-03", 1, 30),
            &[">2025-02-01..2025-02-04"],
        );
    }

    #[test]
    fn chunks_are_contiguous_bounded_and_cover_the_window() {
        for chunk_days in 1..=30 {
            let plan = plan_table(
                Table::Occupancy,
                None,
                settings("2024-02-10", "2025-03-05", 1, chunk_days),
            );
            assert_eq!(plan.first().unwrap().range.start(), day("2024-02-10"));
            assert_eq!(plan.last().unwrap().range.end(), day("2025-03-06"));
            for pair in plan.windows(2) {
                assert_eq!(pair[0].range.end(), pair[1].range.start());
            }
            assert!(plan.iter().all(|c| c.range.days() <= i64::from(chunk_days)));
        }
    }

    #[test]
    fn bounds_are_explicit_utc_instants() {
        let range = DateRange::new(day("2025-03-30"), day("2025-03-31")).unwrap();
        assert_eq!(range.start_utc(), "2025-03-30T00:00:00Z");
        assert_eq!(range.end_utc(), "2025-03-31T00:00:00Z");
        assert!(DateRange::new(day("2025-03-30"), day("2025-03-30")).is_none());
    }

    #[test]
    fn series_tables_reread_whole_buckets_of_their_grouping() {
        use crate::schema::SeriesSpec;
        let table = |text: &str| Table::Series(SeriesSpec::parse(text).unwrap());
        let through = day("2025-03-15");
        assert_eq!(resume_day(Table::Traffic, through, 1), day("2025-03-14"));
        assert_eq!(
            resume_day(table("traffic/zone/minute(15)"), through, 1),
            day("2025-03-14")
        );
        // A day bucket east of UTC starts the evening before its date.
        assert_eq!(
            resume_day(table("traffic/location/day"), through, 0),
            day("2025-03-14")
        );
        // The month in progress, and with a lookback of 1 the month before, are read again.
        assert_eq!(
            resume_day(table("traffic/location/month"), through, 0),
            day("2025-02-28")
        );
        assert_eq!(
            resume_day(table("traffic/location/month"), through, 1),
            day("2025-01-31")
        );
    }
}
