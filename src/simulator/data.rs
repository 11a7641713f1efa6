//! The simulator's deterministic dataset: reference objects and hourly traffic/occupancy values,
//! all pure functions of (seed, zone count, space count, history start, outage, settle lag,
//! outage backfill instant) and the simulated clock passed to each lookup.

use chrono::{DateTime, Duration, NaiveDate, Utc, Weekday};

pub use super::local_time::{LocalBucket, SiteZone, hour_floor};

mod objects;

/// The account's zone, in which date-only bounds and relative days are read (US Eastern, as
/// observed on a real account), and the zone of location 0.
pub const ACCOUNT_ZONE: SiteZone = SiteZone::UsEastern;

/// The zone of each location: one US, one not.
const LOCATION_ZONES: [SiteZone; 2] = [SiteZone::UsEastern, SiteZone::CentralEurope];

const MS_PER_HOUR: i64 = 3_600_000;

/// Number of locations; each location has exactly one site.
const LOCATIONS: usize = 2;

// Salts that separate the hash streams, so e.g. zone 3's id and zone 3's counts are unrelated.
const SALT_ORG: u64 = 0x6f72_6700;
const SALT_LOCATION: u64 = 0x6c6f_6300;
const SALT_SITE: u64 = 0x7369_7400;
const SALT_ZONE: u64 = 0x7a6f_6e00;
const SALT_SENSOR: u64 = 0x7365_6e00;
const SALT_SPACE: u64 = 0x7370_6300;
const SALT_TRAFFIC: u64 = 0x7472_6100;
const SALT_OCCUPANCY: u64 = 0x6f63_6300;
const SALT_PROFILE: u64 = 0x7072_6f00;
const SALT_QUARTER: u64 = 0x7175_6100;

/// Zone names deliberately repeat ("Main Entrance" twice): real accounts have non-unique names.
const ZONE_NAMES: [&str; 8] = [
    "Main Entrance",
    "Main Entrance",
    "Side Door",
    "Loading Dock",
    "Parking Garage",
    "East Entrance",
    "West Entrance",
    "Café",
];

/// Sensor models as real zone lists name them in `deviceId`.
const DEVICE_MODELS: [&str; 2] = ["logic-1000", "logic-2000"];

const SPACE_NAMES: [&str; 4] = ["Sales Floor", "Food Court", "Mezzanine", "Gallery"];

/// Relative traffic by local hour of day: closed at night, peaks around lunch and after work.
const DIURNAL: [f64; 24] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.08, 0.25, 0.5, 0.7, 0.9, 1.0, 0.95, 0.85, 0.8, 0.85, 0.9,
    0.7, 0.45, 0.25, 0.1, 0.03, 0.01,
];

/// SplitMix64 finaliser: a cheap, well-mixed, dependency-free hash that is stable across
/// platforms and releases (unlike `std::hash`), so datasets are reproducible forever.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of several words; chaining keeps `(a, b)` and `(b, a)` distinct.
fn hash(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x1234_5678_9abc_def0, |acc, w| splitmix64(acc ^ *w))
}

/// Uniform value in [0, 1) from a hash.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// UUID-formatted (version 4 layout) id derived from the seed, an entity kind and an index.
fn uuid(seed: u64, salt: u64, index: usize) -> String {
    let a = hash(&[seed, salt, index as u64]);
    let b = splitmix64(a);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        0x4000 | (a & 0x0fff),
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The API's timestamp format: UTC with milliseconds, e.g. `2017-07-19T17:29:50.770Z`.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// UTC offset, in hours, of the account's zone at instant `t`.
pub fn local_offset_hours(t: DateTime<Utc>) -> i64 {
    ACCOUNT_ZONE.offset_hours(t)
}

/// The account's local calendar date at instant `t`.
pub fn local_date(t: DateTime<Utc>) -> NaiveDate {
    ACCOUNT_ZONE.local_date(t)
}

/// The account's local midnight of `date`, as a UTC instant.
pub fn local_midnight(date: NaiveDate) -> DateTime<Utc> {
    ACCOUNT_ZONE.local_midnight(date)
}

/// Occupancy of one space in one hour. `avg` has one decimal, and `min <= avg <= max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OccupancyValues {
    /// Highest occupancy in the hour.
    pub max: i64,
    /// Lowest occupancy in the hour.
    pub min: i64,
    /// Mean occupancy in the hour, to one decimal.
    pub avg: f64,
}

#[derive(Debug)]
struct Entity {
    id: String,
    name: String,
    first_hour: DateTime<Utc>,
    /// Whether the entity belongs to site 0 / location 0, which suffers the outage.
    in_outage_site: bool,
    /// The zone of the entity's location: its buckets are built in this local time.
    zone: SiteZone,
    /// Peak hourly volume (zones) or capacity (spaces).
    scale: i64,
}

/// Deterministic fake account. Entity indexes are creation order; API rows are ordered by id,
/// which [`Dataset::zone_order`] / [`Dataset::space_order`] provide.
#[derive(Debug)]
pub struct Dataset {
    seed: u64,
    history_start: DateTime<Utc>,
    outage: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// From this instant of the simulated clock on, the outage hours have rows.
    outage_backfilled_at: Option<DateTime<Utc>>,
    /// How long after an hour ends its counts reach their final value.
    settle_lag_secs: u64,
    /// Whether location objects carry `timezone`.
    location_timezones: bool,
    org_id: String,
    location_ids: Vec<String>,
    site_ids: Vec<String>,
    zones: Vec<Entity>,
    sensor_ids: Vec<String>,
    spaces: Vec<Entity>,
    zone_order: Vec<usize>,
    space_order: Vec<usize>,
}

impl Dataset {
    /// The account for `seed` with `zones` zones and `spaces` spaces, history from
    /// `history_start` (floored to the hour) and an optional site outage `[start, end)`.
    pub fn new(
        seed: u64,
        zones: usize,
        spaces: usize,
        history_start: DateTime<Utc>,
        outage: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Dataset {
        let history_start = hour_floor(history_start);
        let zone_entities: Vec<Entity> = (0..zones)
            .map(|i| Entity {
                id: uuid(seed, SALT_ZONE, i),
                name: name_for(&ZONE_NAMES, i),
                first_hour: zone_first_hour(history_start, i),
                in_outage_site: i % LOCATIONS == 0,
                zone: LOCATION_ZONES[i % LOCATIONS],
                scale: 80 + (hash(&[seed, SALT_PROFILE, SALT_ZONE, i as u64]) % 300) as i64,
            })
            .collect();
        let space_entities: Vec<Entity> = (0..spaces)
            .map(|j| Entity {
                id: uuid(seed, SALT_SPACE, j),
                name: name_for(&SPACE_NAMES, j),
                first_hour: space_first_hour(history_start, j),
                in_outage_site: j % LOCATIONS == 0,
                zone: LOCATION_ZONES[j % LOCATIONS],
                scale: 50 + 25 * (hash(&[seed, SALT_PROFILE, SALT_SPACE, j as u64]) % 10) as i64,
            })
            .collect();
        let zone_order = id_order(&zone_entities);
        let space_order = id_order(&space_entities);
        Dataset {
            seed,
            history_start,
            outage,
            outage_backfilled_at: None,
            settle_lag_secs: 0,
            location_timezones: true,
            org_id: uuid(seed, SALT_ORG, 0),
            location_ids: (0..LOCATIONS)
                .map(|i| uuid(seed, SALT_LOCATION, i))
                .collect(),
            site_ids: (0..LOCATIONS).map(|i| uuid(seed, SALT_SITE, i)).collect(),
            sensor_ids: (0..zones).map(|i| uuid(seed, SALT_SENSOR, i)).collect(),
            zones: zone_entities,
            spaces: space_entities,
            zone_order,
            space_order,
        }
    }

    /// Whether location objects carry their `timezone` field.
    #[must_use]
    pub fn with_location_timezones(mut self, carried: bool) -> Dataset {
        self.location_timezones = carried;
        self
    }

    /// Counts of an hour settle only `secs` after the hour ends (late uploads): until then every
    /// value is scaled by `elapsed since hour start / (3600 + secs)`. 0 (the default) means an
    /// hour is final as soon as it is over.
    #[must_use]
    pub fn with_settle_lag_secs(mut self, secs: u64) -> Dataset {
        self.settle_lag_secs = secs;
        self
    }

    /// The outage is backfilled (the site uploads late) at simulated instant `at`: lookups with
    /// `now >= at` see rows for the outage hours. `None` (the default) means never.
    #[must_use]
    pub fn with_outage_backfilled_at(mut self, at: Option<DateTime<Utc>>) -> Dataset {
        self.outage_backfilled_at = at;
        self
    }

    /// The first hour with data (of the earliest entities).
    pub fn history_start(&self) -> DateTime<Utc> {
        self.history_start
    }

    /// The site outage `[start, end)`, if any.
    pub fn outage(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.outage
    }

    /// See [`Dataset::with_outage_backfilled_at`].
    pub fn outage_backfilled_at(&self) -> Option<DateTime<Utc>> {
        self.outage_backfilled_at
    }

    /// See [`Dataset::with_settle_lag_secs`].
    pub fn settle_lag_secs(&self) -> u64 {
        self.settle_lag_secs
    }

    /// Number of zones.
    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }

    /// Number of spaces.
    pub fn space_count(&self) -> usize {
        self.spaces.len()
    }

    /// Zone ids by index (the index used by [`Dataset::traffic`]).
    pub fn zone_ids(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.id.clone()).collect()
    }

    /// Space ids by index (the index used by [`Dataset::occupancy`]).
    pub fn space_ids(&self) -> Vec<String> {
        self.spaces.iter().map(|s| s.id.clone()).collect()
    }

    /// The id of the zone at `zone_index`.
    pub fn zone_id(&self, zone_index: usize) -> Option<&str> {
        self.zones.get(zone_index).map(|z| z.id.as_str())
    }

    /// The name of the zone at `zone_index` (names repeat, as on real accounts).
    pub fn zone_name(&self, zone_index: usize) -> Option<&str> {
        self.zones.get(zone_index).map(|z| z.name.as_str())
    }

    /// The id of the space at `space_index`.
    pub fn space_id(&self, space_index: usize) -> Option<&str> {
        self.spaces.get(space_index).map(|s| s.id.as_str())
    }

    /// The name of the space at `space_index`.
    pub fn space_name(&self, space_index: usize) -> Option<&str> {
        self.spaces.get(space_index).map(|s| s.name.as_str())
    }

    /// First hour with data for a zone (some zones are installed mid-history).
    pub fn zone_first_hour(&self, zone_index: usize) -> Option<DateTime<Utc>> {
        self.zones.get(zone_index).map(|z| z.first_hour)
    }

    /// First hour with data for a space (some spaces are added mid-history).
    pub fn space_first_hour(&self, space_index: usize) -> Option<DateTime<Utc>> {
        self.spaces.get(space_index).map(|s| s.first_hour)
    }

    /// Zone indexes sorted by zone id: the order rows take within one hour.
    pub fn zone_order(&self) -> &[usize] {
        &self.zone_order
    }

    /// Space indexes sorted by space id.
    pub fn space_order(&self) -> &[usize] {
        &self.space_order
    }

    /// `(sumins, sumouts)` of a zone for the bucket starting at `hour` (floored to the hour),
    /// or `None` when the API would return no row at all. Buckets are local hours: see
    /// [`local_bucket`].
    pub fn traffic(
        &self,
        zone_index: usize,
        hour: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(i64, i64)> {
        let zone = self.zones.get(zone_index)?.zone;
        merge_local_hours(
            zone,
            hour,
            |hour| self.utc_hour_traffic(zone_index, hour, now),
            add_counts,
        )
    }

    /// A zone's counts of the quarter hour starting at `quarter`: its UTC hour's counts split
    /// over the quarters that have begun by `now`, so the quarters always add up to the hour.
    pub(crate) fn traffic_quarter(
        &self,
        zone_index: usize,
        quarter: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(i64, i64)> {
        let hour = hour_floor(quarter);
        let counts = self.utc_hour_traffic(zone_index, hour, now)?;
        split_into_quarters(
            counts,
            hash(&[
                self.seed,
                SALT_QUARTER,
                zone_index as u64,
                hour.timestamp() as u64,
            ]),
            quarter,
            now,
        )
    }

    /// A space's counts of the quarter hour starting at `quarter`, as [`Dataset::traffic_quarter`].
    pub(crate) fn space_traffic_quarter(
        &self,
        space_index: usize,
        quarter: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(i64, i64)> {
        let hour = hour_floor(quarter);
        let counts = self.utc_hour_space_traffic(space_index, hour, now)?;
        split_into_quarters(
            counts,
            hash(&[
                self.seed,
                SALT_QUARTER,
                SALT_SPACE,
                space_index as u64,
                hour.timestamp() as u64,
            ]),
            quarter,
            now,
        )
    }

    /// The zone a zone's location is in.
    pub fn zone_time_zone(&self, zone_index: usize) -> SiteZone {
        LOCATION_ZONES[self.location_of(zone_index)]
    }

    /// The zone a space's location is in.
    pub fn space_time_zone(&self, space_index: usize) -> SiteZone {
        LOCATION_ZONES[self.location_of(space_index)]
    }

    /// The location of zone or space `index` (they alternate between the locations).
    pub fn location_of(&self, index: usize) -> usize {
        index % LOCATIONS
    }

    /// Number of locations (each has one site).
    pub fn location_count(&self) -> usize {
        LOCATIONS
    }

    /// The zone a location is in.
    pub fn location_time_zone(&self, location: usize) -> SiteZone {
        LOCATION_ZONES[location % LOCATIONS]
    }

    /// A location's id.
    pub fn location_id(&self, location: usize) -> Option<&str> {
        self.location_ids.get(location).map(String::as_str)
    }

    /// A location's name, as `/api/location` gives it.
    pub fn location_name(&self, location: usize) -> String {
        self.locations()
            .get(location)
            .and_then(|object| object["name"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// A site's id (site `i` belongs to location `i`).
    pub fn site_id(&self, site: usize) -> Option<&str> {
        self.site_ids.get(site).map(String::as_str)
    }

    /// The id of the sensor of zone `zone_index` (each zone has its own sensor).
    pub fn sensor_id(&self, zone_index: usize) -> Option<&str> {
        self.sensor_ids.get(zone_index).map(String::as_str)
    }

    /// A zone's counts of one UTC hour, before local-time bucketing.
    pub(crate) fn utc_hour_traffic(
        &self,
        zone_index: usize,
        hour: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(i64, i64)> {
        let zone = self.zones.get(zone_index)?;
        let elapsed = self.elapsed(zone, hour, now)?;
        let h = hash(&[
            self.seed,
            SALT_TRAFFIC,
            zone_index as u64,
            hour.timestamp() as u64,
        ]);
        let (ins, outs) = volume(h, zone.scale as f64, weight(zone.zone, hour));
        Some((elapsed.scale(ins), elapsed.scale(outs)))
    }

    /// Occupancy of a space for the bucket starting at `hour`, or `None` when there is no
    /// row. Buckets are local hours: see [`local_bucket`].
    pub fn occupancy(
        &self,
        space_index: usize,
        hour: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<OccupancyValues> {
        let zone = self.spaces.get(space_index)?.zone;
        merge_local_hours(
            zone,
            hour,
            |hour| self.utc_hour_occupancy(space_index, hour, now),
            |a, b| OccupancyValues {
                max: a.max.max(b.max),
                min: a.min.min(b.min),
                // The mean of two one-decimal averages, to one decimal again.
                avg: ((a.avg + b.avg) * 5.0).round() / 10.0,
            },
        )
    }

    /// A space's occupancy in one UTC hour, before local-time bucketing.
    pub(crate) fn utc_hour_occupancy(
        &self,
        space_index: usize,
        hour: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<OccupancyValues> {
        let space = self.spaces.get(space_index)?;
        let elapsed = self.elapsed(space, hour, now)?;
        let h = hash(&[
            self.seed,
            SALT_OCCUPANCY,
            space_index as u64,
            hour.timestamp() as u64,
        ]);
        let capacity = space.scale as f64;
        let level = weight(space.zone, hour) * capacity * 0.8 * (0.75 + 0.5 * unit(h));
        let max = ((level * 1.2).ceil() as i64).min(space.scale);
        let min = (level * 0.6).floor() as i64;
        let jitter = unit(splitmix64(h)) - 0.5;
        let avg_tenths = ((level + jitter) * 10.0).round() as i64;
        // Scale all three by the settled fraction (an unsettled hour "grows"), then re-clamp
        // the average, because flooring each one separately can break min <= avg <= max.
        let max = elapsed.scale(max);
        let min = elapsed.scale(min);
        let avg_tenths = elapsed.scale(avg_tenths).clamp(min * 10, max * 10);
        Some(OccupancyValues {
            max,
            min,
            avg: avg_tenths as f64 / 10.0,
        })
    }

    /// `(sumins, sumouts)` through a space's doors for a bucket; rows exist exactly when
    /// [`Dataset::occupancy`] has one.
    pub fn space_traffic(
        &self,
        space_index: usize,
        hour: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(i64, i64)> {
        let zone = self.spaces.get(space_index)?.zone;
        merge_local_hours(
            zone,
            hour,
            |hour| self.utc_hour_space_traffic(space_index, hour, now),
            add_counts,
        )
    }

    /// A space's counts of one UTC hour, before local-time bucketing.
    pub(crate) fn utc_hour_space_traffic(
        &self,
        space_index: usize,
        hour: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(i64, i64)> {
        let space = self.spaces.get(space_index)?;
        let elapsed = self.elapsed(space, hour, now)?;
        let h = hash(&[
            self.seed,
            SALT_TRAFFIC,
            SALT_SPACE,
            space_index as u64,
            hour.timestamp() as u64,
        ]);
        let (ins, outs) = volume(h, space.scale as f64 * 1.5, weight(space.zone, hour));
        Some((elapsed.scale(ins), elapsed.scale(outs)))
    }

    /// How far `hour` has settled by `now`, or `None` when the entity has no row for that hour.
    fn elapsed(&self, entity: &Entity, hour: DateTime<Utc>, now: DateTime<Utc>) -> Option<Settled> {
        if hour < entity.first_hour || hour >= now {
            return None;
        }
        if entity.in_outage_site
            && let Some((start, end)) = self.outage
            && hour >= start
            && hour < end
            && self.outage_backfilled_at.is_none_or(|at| now < at)
        {
            return None;
        }
        let lag_ms = i64::try_from(self.settle_lag_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let full_ms = MS_PER_HOUR.saturating_add(lag_ms);
        Some(Settled {
            elapsed_ms: (now - hour).num_milliseconds().min(full_ms),
            full_ms,
        })
    }
}

/// The bucket role of the UTC hour starting at `hour` in the account's zone.
pub fn local_bucket(hour: DateTime<Utc>) -> LocalBucket {
    ACCOUNT_ZONE.bucket_role(hour)
}

/// The value of the local bucket starting at `hour`, from per-UTC-hour values: `None` for the
/// first occurrence of a repeated hour, both occurrences merged for the second.
fn merge_local_hours<T>(
    zone: SiteZone,
    hour: DateTime<Utc>,
    utc_hour: impl Fn(DateTime<Utc>) -> Option<T>,
    merge: impl Fn(T, T) -> T,
) -> Option<T> {
    let hour = hour_floor(hour);
    match zone.bucket_role(hour) {
        LocalBucket::Own => utc_hour(hour),
        LocalBucket::MergedIntoNext => None,
        LocalBucket::HoldsPrevious => match (utc_hour(hour - Duration::hours(1)), utc_hour(hour)) {
            (Some(first), Some(second)) => Some(merge(first, second)),
            (first, second) => first.or(second),
        },
    }
}

/// One quarter of an hour's counts: the hour's counts split by weights from `h` over the
/// quarters begun by `now` (integer maths, so the parts add up exactly), or `None` for a
/// quarter that has not begun.
fn split_into_quarters(
    (ins, outs): (i64, i64),
    h: u64,
    quarter: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(i64, i64)> {
    let hour = hour_floor(quarter);
    let index = ((quarter - hour).num_minutes() / 15) as usize;
    let begun = (((now - hour).num_seconds() + 899) / 900).clamp(0, 4) as usize;
    if index >= begun {
        return None;
    }
    let weights: Vec<i64> = (0..begun)
        .map(|k| 1 + ((h >> (8 * k)) % 4) as i64)
        .collect();
    let total: i64 = weights.iter().sum();
    let before: i64 = weights[..index].iter().sum();
    let through = before + weights[index];
    let part = |value: i64| value * through / total - value * before / total;
    Some((part(ins), part(outs)))
}

fn add_counts(a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
    (a.0 + b.0, a.1 + b.1)
}

fn name_for(names: &[&str], index: usize) -> String {
    let base = names[index % names.len()];
    let round = index / names.len();
    if round == 0 {
        base.to_owned()
    } else {
        format!("{base} {}", round + 1)
    }
}

/// Even zones exist from the start; odd zones are installed 5–30 days later at 14:00 UTC
/// (09:00 local), so their first day is partial. Cycled so large zone counts stay in range.
fn zone_first_hour(history_start: DateTime<Utc>, i: usize) -> DateTime<Utc> {
    if i % 2 == 0 {
        history_start
    } else {
        history_start + Duration::days(5 * (1 + (i as i64 / 2) % 6)) + Duration::hours(14)
    }
}

/// Same idea as zones with a different rhythm (7–28 days late), so the two tables differ.
fn space_first_hour(history_start: DateTime<Utc>, j: usize) -> DateTime<Utc> {
    if j % 2 == 0 {
        history_start
    } else {
        history_start + Duration::days(7 * (1 + (j as i64 / 2) % 4)) + Duration::hours(14)
    }
}

fn id_order(entities: &[Entity]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..entities.len()).collect();
    order.sort_by(|a, b| entities[*a].id.cmp(&entities[*b].id));
    order
}

/// Diurnal weight (by local hour) times a weekday factor: Saturdays are busy, Sundays quiet.
fn weight(zone: SiteZone, hour: DateTime<Utc>) -> f64 {
    let (local_hour, weekday) = zone.local_hour_and_weekday(hour);
    let day_factor = match weekday {
        Weekday::Sat => 1.3,
        Weekday::Sun => 0.8,
        _ => 1.0,
    };
    DIURNAL[local_hour as usize] * day_factor
}

/// Full-hour (ins, outs) for a weight; closed hours are mostly 0 with the odd cleaner or guard.
fn volume(h: u64, peak: f64, weight: f64) -> (i64, i64) {
    let noise = 0.75 + 0.5 * unit(h);
    let stray = i64::from(h % 8 == 0) * (1 + (h >> 8) as i64 % 2);
    let ins = (peak * weight * noise).round() as i64 + stray;
    let outs_ratio = 0.85 + 0.25 * unit(splitmix64(h));
    let outs = (ins as f64 * outs_ratio).round() as i64;
    (ins, outs)
}

/// How much of an hour's final counts are visible: `elapsed_ms / full_ms`, where `full_ms` is
/// the hour plus the settle lag and `0 < elapsed_ms <= full_ms`.
#[derive(Clone, Copy, Debug)]
struct Settled {
    elapsed_ms: i64,
    full_ms: i64,
}

impl Settled {
    /// Scales a final value down to the settled fraction (integer maths: exact and never above
    /// the final value; i128 because a huge lag times a count could overflow i64).
    fn scale(self, value: i64) -> i64 {
        if self.elapsed_ms >= self.full_ms {
            value
        } else {
            let scaled = i128::from(value) * i128::from(self.elapsed_ms) / i128::from(self.full_ms);
            i64::try_from(scaled).unwrap_or(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn dataset(seed: u64) -> Dataset {
        let start = at("2025-01-01T00:00:00Z");
        Dataset::new(
            seed,
            6,
            3,
            start,
            Some((at("2025-01-21T08:00:00Z"), at("2025-01-21T14:00:00Z"))),
        )
    }

    fn now() -> DateTime<Utc> {
        at("2025-03-15T10:30:00Z")
    }

    #[test]
    fn same_seed_gives_same_data() {
        let (a, b) = (dataset(7), dataset(7));
        assert_eq!(a.zone_ids(), b.zone_ids());
        assert_eq!(a.space_ids(), b.space_ids());
        assert_eq!(a.zones(), b.zones());
        assert_eq!(a.locations(), b.locations());
        for h in 0..500 {
            let hour = at("2025-02-01T00:00:00Z") + Duration::hours(h);
            for z in 0..6 {
                assert_eq!(a.traffic(z, hour, now()), b.traffic(z, hour, now()));
            }
            for s in 0..3 {
                assert_eq!(a.occupancy(s, hour, now()), b.occupancy(s, hour, now()));
            }
        }
        let c = dataset(8);
        assert_ne!(a.zone_ids(), c.zone_ids());
    }

    #[test]
    fn ids_are_lowercase_uuids_and_order_is_sorted() {
        let d = dataset(7);
        for id in d.zone_ids().iter().chain(d.space_ids().iter()) {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(
                id.chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
            );
        }
        let ids = d.zone_ids();
        let ordered: Vec<&String> = d.zone_order().iter().map(|i| &ids[*i]).collect();
        assert!(ordered.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn reference_objects_link_up() {
        let d = dataset(7);
        let names: Vec<&str> = (0..6).filter_map(|i| d.zone_name(i)).collect();
        assert_eq!(names.iter().filter(|n| **n == "Main Entrance").count(), 2);
        let location = &d.locations()[0];
        // The recorded field set, plus the (inferred) `timezone`.
        assert_eq!(location.as_object().unwrap().len(), 17);
        let zones: Vec<Value> = d
            .locations()
            .iter()
            .map(|l| l["timezone"].clone())
            .collect();
        assert_eq!(zones, [json!("America/New_York"), json!("Europe/Berlin")]);
        let sensor_ids: Vec<Value> = d.sensors().iter().map(|s| s["sensorId"].clone()).collect();
        assert!(
            d.zones()
                .iter()
                .all(|z| sensor_ids.contains(&z["sensorId"]))
        );
        let site_ids: Vec<Value> = d.sites().iter().map(|s| s["siteId"].clone()).collect();
        assert!(d.sensors().iter().all(|s| site_ids.contains(&s["siteId"])));
    }

    #[test]
    fn late_zone_has_no_rows_before_its_start() {
        let d = dataset(7);
        let first = d.zone_first_hour(1).unwrap();
        assert!(first > d.history_start());
        assert_eq!(d.traffic(1, first - Duration::hours(1), now()), None);
        assert_eq!(d.traffic(1, d.history_start(), now()), None);
        assert!(d.traffic(1, first, now()).is_some());
        assert!(d.traffic(0, d.history_start(), now()).is_some());
        let space_first = d.space_first_hour(1).unwrap();
        assert_eq!(
            d.occupancy(1, space_first - Duration::hours(1), now()),
            None
        );
        assert!(d.occupancy(1, space_first, now()).is_some());
    }

    #[test]
    fn outage_hours_have_no_rows_for_site_zero_only() {
        let d = dataset(7);
        let (start, end) = d.outage().unwrap();
        let mut hour = start;
        while hour < end {
            assert_eq!(d.traffic(0, hour, now()), None);
            assert_eq!(d.traffic(2, hour, now()), None);
            assert!(d.traffic(1, hour, now()).is_some());
            assert_eq!(d.occupancy(0, hour, now()), None);
            hour += Duration::hours(1);
        }
        assert!(d.traffic(0, end, now()).is_some());
        assert!(d.traffic(0, start - Duration::hours(1), now()).is_some());
    }

    #[test]
    fn partial_hour_grows_and_future_is_absent() {
        let d = dataset(7);
        let hour = hour_floor(now());
        assert_eq!(d.traffic(0, hour + Duration::hours(1), now()), None);
        let later = hour + Duration::minutes(59);
        for z in 0..6 {
            let (pi, po) = d.traffic(z, hour, now()).unwrap();
            let (li, lo) = d.traffic(z, hour, later).unwrap();
            let (fi, fo) = d.traffic(z, hour, hour + Duration::hours(2)).unwrap();
            assert!(pi <= li && li <= fi && po <= lo && lo <= fo);
        }
        // The default clock sits in a closed night hour; check real growth in a busy one.
        let busy = at("2025-03-14T17:00:00Z");
        let half_way = busy + Duration::minutes(30);
        let full: i64 = (0..6).map(|z| d.traffic(z, busy, now()).unwrap().0).sum();
        let half: i64 = (0..6)
            .map(|z| d.traffic(z, busy, half_way).unwrap().0)
            .sum();
        assert!(half < full && half * 2 <= full, "half {half}, full {full}");
    }

    #[test]
    fn counts_have_a_diurnal_shape() {
        let d = dataset(7);
        let night = at("2025-02-04T08:00:00Z"); // 03:00 local
        let noon = at("2025-02-04T17:00:00Z"); // 12:00 local
        let (n, _) = d.traffic(0, night, now()).unwrap();
        let (p, _) = d.traffic(0, noon, now()).unwrap();
        assert!(n <= 2 && p >= 50, "night {n}, noon {p}");
    }

    #[test]
    fn occupancy_is_ordered_with_one_decimal() {
        let d = dataset(7);
        let mut hour = at("2025-02-01T00:00:00Z");
        let end = now() + Duration::hours(1);
        let mut checked = 0;
        while hour < end {
            for s in 0..3 {
                if let Some(o) = d.occupancy(s, hour, now()) {
                    assert!(o.min as f64 <= o.avg && o.avg <= o.max as f64, "{o:?}");
                    assert!(((o.avg * 10.0).round() - o.avg * 10.0).abs() < 1e-9);
                    assert!(d.space_traffic(s, hour, now()).is_some());
                    checked += 1;
                }
            }
            hour += Duration::hours(1);
        }
        assert!(checked > 100, "only {checked} hours had occupancy");
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn local_midnight_follows_us_eastern_dst() {
        for (day, midnight) in [
            ("2025-01-02", "2025-01-02T05:00:00Z"),
            ("2025-03-08", "2025-03-08T05:00:00Z"),
            // Spring change day: midnight is still standard time, the day has 23 hours.
            ("2025-03-09", "2025-03-09T05:00:00Z"),
            ("2025-03-10", "2025-03-10T04:00:00Z"),
            ("2025-07-04", "2025-07-04T04:00:00Z"),
            // Autumn change day: midnight is still daylight time, the day has 25 hours.
            ("2025-11-02", "2025-11-02T04:00:00Z"),
            ("2025-11-03", "2025-11-03T05:00:00Z"),
            ("2025-12-31", "2025-12-31T05:00:00Z"),
            // Another year's change days (second Sunday of March, first of November).
            ("2026-03-08", "2026-03-08T05:00:00Z"),
            ("2026-03-09", "2026-03-09T04:00:00Z"),
            ("2026-11-01", "2026-11-01T04:00:00Z"),
            ("2026-11-02", "2026-11-02T05:00:00Z"),
        ] {
            assert_eq!(local_midnight(date(day)), at(midnight), "{day}");
        }
        let spring = local_midnight(date("2025-03-10")) - local_midnight(date("2025-03-09"));
        let autumn = local_midnight(date("2025-11-03")) - local_midnight(date("2025-11-02"));
        assert_eq!((spring.num_hours(), autumn.num_hours()), (23, 25));
    }

    #[test]
    fn local_offset_changes_at_two_am_local() {
        for (instant, offset, local_day) in [
            ("2025-03-09T06:59:59Z", -5, "2025-03-09"), // 01:59:59 EST
            ("2025-03-09T07:00:00Z", -4, "2025-03-09"), // 03:00 EDT
            ("2025-11-02T05:59:59Z", -4, "2025-11-02"), // 01:59:59 EDT
            ("2025-11-02T06:00:00Z", -5, "2025-11-02"), // 01:00 EST
            ("2025-03-15T03:30:00Z", -4, "2025-03-14"),
            ("2025-01-01T04:59:59Z", -5, "2024-12-31"),
        ] {
            assert_eq!(local_offset_hours(at(instant)), offset, "{instant}");
            assert_eq!(local_date(at(instant)), date(local_day), "{instant}");
        }
    }

    #[test]
    fn settle_lag_makes_recent_hours_grow_until_final() {
        let settled = dataset(7);
        let lagging = dataset(7).with_settle_lag_secs(1800);
        assert_eq!(lagging.settle_lag_secs(), 1800);
        let hour = at("2025-03-14T17:00:00Z");
        let later = hour + Duration::days(1);
        for z in 0..6 {
            let (fi, fo) = settled.traffic(z, hour, later).unwrap();
            // Final once the hour plus the lag is over, and never before.
            let end = hour + Duration::seconds(5400);
            assert_eq!(lagging.traffic(z, hour, end), Some((fi, fo)));
            assert_eq!(lagging.traffic(z, hour, later), Some((fi, fo)));
            // At the hour's end only 3600/5400 of it is in; without a lag it is final then.
            let at_end = lagging.traffic(z, hour, hour + Duration::hours(1)).unwrap();
            assert_eq!(at_end, (fi * 2 / 3, fo * 2 / 3));
            assert_eq!(
                settled.traffic(z, hour, hour + Duration::hours(1)),
                Some((fi, fo))
            );
            let occupancy = settled.occupancy(z % 3, hour, later).unwrap();
            let early = lagging
                .occupancy(z % 3, hour, hour + Duration::minutes(45))
                .unwrap();
            assert!(early.max <= occupancy.max && early.min <= occupancy.min);
            assert_eq!(lagging.occupancy(z % 3, hour, end), Some(occupancy));
            let (si, _) = settled.space_traffic(z % 3, hour, later).unwrap();
            let (li, _) = lagging
                .space_traffic(z % 3, hour, hour + Duration::minutes(45))
                .unwrap();
            assert_eq!(li, si * 2700 / 5400);
        }
        let busy: i64 = (0..6)
            .map(|z| settled.traffic(z, hour, later).unwrap().0)
            .sum();
        assert!(
            busy > 100,
            "a busy hour is needed to see growth, got {busy}"
        );
        // A lag larger than any clock still yields values (no overflow), all zero at first.
        let huge = dataset(7).with_settle_lag_secs(u64::MAX);
        assert_eq!(huge.traffic(0, hour, later), Some((0, 0)));
    }

    #[test]
    fn backfilled_outage_appears_from_the_backfill_instant() {
        let backfill = at("2025-02-01T00:00:00Z");
        let d = dataset(7).with_outage_backfilled_at(Some(backfill));
        assert_eq!(d.outage_backfilled_at(), Some(backfill));
        let (start, end) = d.outage().unwrap();
        let plain = dataset(7);
        let mut hour = start;
        while hour < end {
            let before = backfill - Duration::seconds(1);
            assert_eq!(d.traffic(0, hour, before), None);
            assert_eq!(d.occupancy(0, hour, before), None);
            assert!(d.traffic(0, hour, backfill).is_some());
            assert!(d.occupancy(0, hour, backfill).is_some());
            assert!(d.space_traffic(0, hour, now()).is_some());
            assert_eq!(plain.traffic(0, hour, now()), None);
            hour += Duration::hours(1);
        }
    }

    #[test]
    fn the_repeated_fall_back_hour_is_one_bucket_in_each_zone_local_time() {
        let data = dataset(7);
        let late = at("2026-01-01T00:00:00Z");
        // Spring forward skips a local hour but no UTC hour: every bucket is its own.
        for hour in 0..24 {
            let hour = at("2025-03-09T00:00:00Z") + Duration::hours(hour);
            assert_eq!(local_bucket(hour), LocalBucket::Own, "{hour}");
        }
        // Zones and spaces alternate between New York (falls back at 06:00Z on 2025-11-02:
        // 05Z and 06Z are both 01:00 local) and Berlin (at 01:00Z on 2025-10-26: 00Z and 01Z
        // are both 02:00 local).
        let repeated = |index: usize| {
            if index % 2 == 0 {
                (at("2025-11-02T05:00:00Z"), at("2025-11-02T06:00:00Z"))
            } else {
                (at("2025-10-26T00:00:00Z"), at("2025-10-26T01:00:00Z"))
            }
        };
        for zone in 0..data.zone_count() {
            let (first, second) = repeated(zone);
            assert_eq!(data.traffic(zone, first, late), None);
            let merged = add_counts(
                data.utc_hour_traffic(zone, first, late).unwrap(),
                data.utc_hour_traffic(zone, second, late).unwrap(),
            );
            assert_eq!(data.traffic(zone, second, late), Some(merged));
            // The other zone's change hour is an ordinary hour here.
            let (other, _) = repeated(zone + 1);
            assert!(data.traffic(zone, other, late).is_some());
        }
        for space in 0..data.space_count() {
            let (first, second) = repeated(space);
            assert_eq!(data.occupancy(space, first, late), None);
            assert_eq!(data.space_traffic(space, first, late), None);
            let merged = data.occupancy(space, second, late).unwrap();
            let (a, b) = (
                data.utc_hour_occupancy(space, first, late).unwrap(),
                data.utc_hour_occupancy(space, second, late).unwrap(),
            );
            assert_eq!(merged.max, a.max.max(b.max));
            assert_eq!(merged.min, a.min.min(b.min));
            assert!(merged.min as f64 <= merged.avg && merged.avg <= merged.max as f64);
        }
    }
}
