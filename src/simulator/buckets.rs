//! Every series the API groups: traffic by zone, sensor, site or location and occupancy by
//! space or location, in 15- and 30-minute, hourly, daily and monthly buckets built in each
//! location's local time. Values come from the dataset's UTC hours, split into quarter hours
//! and summed, so groupings agree (quarters sum to the hour, a local day's hours to the day).
//! What a bucket that only partly overlaps the request holds is the `whole_edge_buckets` knob.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::{
    data::{Dataset, OccupancyValues},
    local_time::{LocalBucket, SiteZone, hour_floor},
};
use crate::schema::{Entity, Grouping, Measure, SeriesSpec};

/// One bucket of a series for one entity.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesRow {
    /// The bucket's start (`recordDate_<unit>_<n>`).
    pub bucket: DateTime<Utc>,
    /// The entity's id.
    pub id: String,
    /// The entity's name.
    pub name: String,
    /// `(sumins, sumouts)`.
    pub counts: (i64, i64),
    /// Occupancy series only.
    pub occupancy: Option<OccupancyValues>,
    /// The entity's local calendar date at the bucket's start.
    pub local_date: NaiveDate,
}

/// A bucket: its label and the UTC intervals it covers (two on the autumn change, where the
/// repeated local hour's quarters fold into the second occurrence's).
struct Bucket {
    label: DateTime<Utc>,
    parts: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// An entity of a series level: the zones or spaces it sums, in its location's zone.
struct Member {
    id: String,
    name: String,
    zone: SiteZone,
    /// Indexes of zones (traffic) or spaces (occupancy).
    parts: Vec<usize>,
}

const QUARTER: i64 = 15 * 60;

/// The rows of `spec` for buckets that overlap `[start, end)`, as the API would send them at
/// `now`, ordered by bucket then id. With `whole_edge_buckets` a bucket that sticks out of the
/// window carries its whole value; otherwise only the part inside the window.
pub fn series_rows(
    dataset: &Dataset,
    spec: SeriesSpec,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
    whole_edge_buckets: bool,
) -> Vec<SeriesRow> {
    let mut rows = Vec::new();
    for member in members(dataset, spec) {
        for bucket in buckets(member.zone, spec.grouping, start, end) {
            let parts: Vec<(DateTime<Utc>, DateTime<Utc>)> = bucket
                .parts
                .iter()
                .filter_map(|&(from, until)| {
                    let (from, until) = if whole_edge_buckets {
                        (from, until)
                    } else {
                        (from.max(start), until.min(end))
                    };
                    (from < until).then_some((from, until))
                })
                .collect();
            if let Some(row) = value(dataset, spec.measure, &member, &parts, now) {
                rows.push(SeriesRow {
                    bucket: bucket.label,
                    id: member.id.clone(),
                    name: member.name.clone(),
                    counts: row.0,
                    occupancy: row.1,
                    local_date: member.zone.local_date(bucket.label),
                });
            }
        }
    }
    rows.sort_by(|a, b| (a.bucket, &a.id).cmp(&(b.bucket, &b.id)));
    rows
}

/// What the connector should hold for `spec` from `from` on, at `now`: every bucket whose
/// start lies in `[from, now)`, with its whole value so far.
pub fn series_truth(
    dataset: &Dataset,
    spec: SeriesSpec,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<SeriesRow> {
    let mut rows = series_rows(
        dataset,
        spec,
        from,
        now + Duration::seconds(spec.grouping.longest_bucket_secs()),
        now,
        true,
    );
    rows.retain(|row| row.bucket >= from && row.bucket < now);
    rows
}

/// The entities of a series level.
fn members(dataset: &Dataset, spec: SeriesSpec) -> Vec<Member> {
    let zones = dataset.zone_count();
    let spaces = dataset.space_count();
    let single = |index: usize, id: Option<&str>, name: Option<&str>, zone| Member {
        id: id.unwrap_or_default().to_owned(),
        name: name.unwrap_or_default().to_owned(),
        zone,
        parts: vec![index],
    };
    match (spec.measure, spec.entity) {
        (Measure::Traffic, Entity::Zone) => (0..zones)
            .map(|i| {
                single(
                    i,
                    dataset.zone_id(i),
                    dataset.zone_name(i),
                    dataset.zone_time_zone(i),
                )
            })
            .collect(),
        (Measure::Traffic, Entity::Sensor) => (0..zones)
            .map(|i| {
                single(
                    i,
                    dataset.sensor_id(i),
                    Some(&format!("Sensor {}", i + 1)),
                    dataset.zone_time_zone(i),
                )
            })
            .collect(),
        (Measure::Occupancy, Entity::Space) => (0..spaces)
            .map(|j| {
                single(
                    j,
                    dataset.space_id(j),
                    dataset.space_name(j),
                    dataset.space_time_zone(j),
                )
            })
            .collect(),
        (measure, entity) => (0..dataset.location_count())
            .map(|location| {
                let count = if measure == Measure::Traffic {
                    zones
                } else {
                    spaces
                };
                let (id, name) = if entity == Entity::Site {
                    (dataset.site_id(location), format!("Site {}", location + 1))
                } else {
                    (
                        dataset.location_id(location),
                        dataset.location_name(location),
                    )
                };
                Member {
                    id: id.unwrap_or_default().to_owned(),
                    name,
                    zone: dataset.location_time_zone(location),
                    parts: (0..count)
                        .filter(|&i| dataset.location_of(i) == location)
                        .collect(),
                }
            })
            .collect(),
    }
}

/// The buckets of `grouping` in `zone` whose intervals overlap `[start, end)`.
fn buckets(
    zone: SiteZone,
    grouping: Grouping,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<Bucket> {
    let overlaps = |bucket: &Bucket| {
        bucket
            .parts
            .iter()
            .any(|&(from, until)| from < end && until > start)
    };
    let mut buckets = Vec::new();
    match grouping {
        Grouping::Minute15 | Grouping::Minute30 | Grouping::Hour => {
            let step = match grouping {
                Grouping::Minute15 => Duration::minutes(15),
                Grouping::Minute30 => Duration::minutes(30),
                _ => Duration::hours(1),
            };
            let mut label = hour_floor(start) - Duration::hours(2);
            while label < end {
                let parts = match zone.bucket_role(label) {
                    LocalBucket::Own => vec![(label, label + step)],
                    LocalBucket::MergedIntoNext => Vec::new(),
                    LocalBucket::HoldsPrevious => vec![
                        (
                            label - Duration::hours(1),
                            label - Duration::hours(1) + step,
                        ),
                        (label, label + step),
                    ],
                };
                let bucket = Bucket { label, parts };
                if overlaps(&bucket) {
                    buckets.push(bucket);
                }
                label += step;
            }
        }
        Grouping::Day | Grouping::Month => {
            let mut date = zone.local_date(start - Duration::days(1));
            if grouping == Grouping::Month {
                date = date.with_day(1).unwrap_or(date);
            }
            while zone.local_midnight(date) < end {
                let next = next_bucket_date(date, grouping);
                let bucket = Bucket {
                    label: zone.local_midnight(date),
                    parts: vec![(zone.local_midnight(date), zone.local_midnight(next))],
                };
                if overlaps(&bucket) {
                    buckets.push(bucket);
                }
                date = next;
            }
        }
    }
    buckets
}

fn next_bucket_date(date: NaiveDate, grouping: Grouping) -> NaiveDate {
    match grouping {
        Grouping::Month => {
            let (year, month) = if date.month() == 12 {
                (date.year() + 1, 1)
            } else {
                (date.year(), date.month() + 1)
            };
            NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MAX)
        }
        _ => date.succ_opt().unwrap_or(NaiveDate::MAX),
    }
}

type BucketValue = ((i64, i64), Option<OccupancyValues>);

/// A member's value over `parts`, or `None` when none of its zones or spaces has data there.
fn value(
    dataset: &Dataset,
    measure: Measure,
    member: &Member,
    parts: &[(DateTime<Utc>, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Option<BucketValue> {
    let mut counts = (0, 0);
    let mut found = false;
    // The UTC hours with data the bucket touches, for occupancy levels.
    let mut hours: Vec<DateTime<Utc>> = Vec::new();
    for &(from, until) in parts {
        let mut quarter = from;
        while quarter < until {
            for &index in &member.parts {
                let quarter_counts = match measure {
                    Measure::Traffic => dataset.traffic_quarter(index, quarter, now),
                    Measure::Occupancy => dataset.space_traffic_quarter(index, quarter, now),
                };
                let Some((ins, outs)) = quarter_counts else {
                    continue;
                };
                found = true;
                counts = (counts.0 + ins, counts.1 + outs);
                if !hours.contains(&hour_floor(quarter)) {
                    hours.push(hour_floor(quarter));
                }
            }
            quarter += Duration::seconds(QUARTER);
        }
    }
    if !found {
        return None;
    }
    // Occupancy: per hour, the member's spaces added up; over the bucket, the highest
    // maximum, the lowest minimum and the mean average of those hours.
    let levels: Vec<OccupancyValues> = if measure == Measure::Occupancy {
        hours
            .iter()
            .filter_map(|&hour| {
                member
                    .parts
                    .iter()
                    .filter_map(|&space| dataset.utc_hour_occupancy(space, hour, now))
                    .reduce(|a, b| OccupancyValues {
                        max: a.max + b.max,
                        min: a.min + b.min,
                        avg: a.avg + b.avg,
                    })
            })
            .collect()
    } else {
        Vec::new()
    };
    let occupancy = (!levels.is_empty()).then(|| {
        let max = levels.iter().map(|level| level.max).max().unwrap_or(0);
        let min = levels.iter().map(|level| level.min).min().unwrap_or(0);
        let mean = levels.iter().map(|level| level.avg).sum::<f64>() / levels.len() as f64;
        OccupancyValues {
            max,
            min,
            avg: ((mean * 10.0).round() / 10.0).clamp(min as f64, max as f64),
        }
    });
    Some((counts, occupancy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn dataset() -> Dataset {
        Dataset::new(7, 4, 2, at("2025-10-20T00:00:00Z"), None)
    }

    fn spec(text: &str) -> SeriesSpec {
        SeriesSpec::parse(text).unwrap()
    }

    /// Sums of `fine` rows per (id, coarse bucket) against the `coarse` rows.
    fn assert_sums_match(
        fine: &[SeriesRow],
        coarse: &[SeriesRow],
        next: impl Fn(&SeriesRow) -> DateTime<Utc>,
    ) {
        assert!(!coarse.is_empty());
        for row in coarse {
            let sum = fine
                .iter()
                .filter(|f| f.id == row.id && f.bucket >= row.bucket && f.bucket < next(row))
                .fold((0, 0), |sum, f| (sum.0 + f.counts.0, sum.1 + f.counts.1));
            assert_eq!(sum, row.counts, "{} at {}", row.id, row.bucket);
        }
    }

    #[test]
    fn groupings_agree_quarters_with_hours_and_hours_with_local_days() {
        let data = dataset();
        let now = at("2025-11-05T10:20:00Z");
        let from = at("2025-10-24T00:00:00Z");
        for entity in ["zone", "sensor", "site", "location"] {
            let quarters = series_truth(
                &data,
                spec(&format!("traffic/{entity}/minute(15)")),
                from,
                now,
            );
            let halves = series_truth(
                &data,
                spec(&format!("traffic/{entity}/minute(30)")),
                from,
                now,
            );
            let hours = series_truth(&data, spec(&format!("traffic/{entity}/hour")), from, now);
            let days = series_truth(&data, spec(&format!("traffic/{entity}/day")), from, now);
            let hour_end = |row: &SeriesRow| row.bucket + Duration::hours(1);
            assert_sums_match(&quarters, &hours, hour_end);
            assert_sums_match(&halves, &hours, hour_end);
            // A local day ends where the next local day's bucket starts.
            let day_end = |row: &SeriesRow| {
                days.iter()
                    .filter(|d| d.id == row.id && d.bucket > row.bucket)
                    .map(|d| d.bucket)
                    .min()
                    .unwrap_or(now)
            };
            let complete: Vec<SeriesRow> = days
                .iter()
                .filter(|d| d.bucket >= from + Duration::days(1))
                .cloned()
                .collect();
            assert_sums_match(&hours, &complete, day_end);
        }
    }

    #[test]
    fn levels_add_up_and_buckets_follow_each_location_zone() {
        let data = dataset();
        let now = at("2025-11-05T10:20:00Z");
        let from = at("2025-10-24T00:00:00Z");
        let zones = series_truth(&data, spec("traffic/zone/day"), from, now);
        let locations = series_truth(&data, spec("traffic/location/day"), from, now);
        for location in &locations {
            let index = (0..data.location_count())
                .find(|&l| data.location_id(l) == Some(location.id.as_str()))
                .unwrap();
            let sum = zones
                .iter()
                .filter(|z| {
                    z.bucket == location.bucket
                        && (0..data.zone_count()).any(|i| {
                            data.zone_id(i) == Some(z.id.as_str()) && data.location_of(i) == index
                        })
                })
                .fold((0, 0), |sum, z| (sum.0 + z.counts.0, sum.1 + z.counts.1));
            assert_eq!(sum, location.counts, "{}", location.bucket);
        }
        // New York's days start at 04:00Z or 05:00Z, Berlin's at 22:00Z or 23:00Z; the fall-back
        // days are 25 hours long in both.
        let starts: std::collections::BTreeSet<u32> = locations
            .iter()
            .map(|row| chrono::Timelike::hour(&row.bucket))
            .collect();
        assert_eq!(starts, [4, 5, 22, 23].into_iter().collect());
        // Each row's local date is its location's calendar date at the bucket's start.
        for row in &locations {
            let location = (0..data.location_count())
                .find(|&l| data.location_id(l) == Some(row.id.as_str()))
                .unwrap();
            let zone = data.location_time_zone(location);
            assert_eq!(row.local_date, zone.local_date(row.bucket));
            assert_eq!(zone.local_midnight(row.local_date), row.bucket);
        }
    }

    #[test]
    fn edge_buckets_are_cut_or_whole_as_the_knob_says() {
        let data = dataset();
        let now = at("2025-11-05T10:20:00Z");
        let spec = spec("traffic/location/day");
        // A UTC-day window cuts both locations' local days.
        let (start, end) = (at("2025-11-01T00:00:00Z"), at("2025-11-02T00:00:00Z"));
        let cut = series_rows(&data, spec, start, end, now, false);
        let whole = series_rows(&data, spec, start, end, now, true);
        assert_eq!(cut.len(), whole.len());
        let truth = series_truth(&data, spec, at("2025-10-24T00:00:00Z"), now);
        for (cut, whole) in cut.iter().zip(&whole) {
            let full = truth
                .iter()
                .find(|t| t.id == whole.id && t.bucket == whole.bucket)
                .unwrap();
            assert_eq!(whole.counts, full.counts);
            assert!(cut.counts.0 <= full.counts.0);
        }
        assert!(cut.iter().zip(&whole).any(|(c, w)| c.counts != w.counts));
    }
}
