//! The reference objects of the simulated account (`/api/location`, `site`, `zone`, `space`,
//! `sensor`), with the field sets and JSON types the real lists have.

use chrono::Duration;
use serde_json::{Value, json};

use super::{
    DEVICE_MODELS, Dataset, LOCATION_ZONES, LOCATIONS, SALT_SENSOR, format_timestamp, hash,
};

impl Dataset {
    /// The `/api/location` objects.
    pub fn locations(&self) -> Vec<Value> {
        let mut locations = self.location_objects();
        if !self.location_timezones {
            for location in &mut locations {
                if let Some(object) = location.as_object_mut() {
                    object.remove("timezone");
                }
            }
        }
        locations
    }

    fn location_objects(&self) -> Vec<Value> {
        let created = self.history_start - Duration::days(400);
        (0..LOCATIONS)
            .map(|i| {
                let created_at = format_timestamp(created + Duration::milliseconds(770 + i as i64));
                let updated_at = format_timestamp(
                    created + Duration::days(30 * (i as i64 + 1)) + Duration::milliseconds(123),
                );
                // The second location mimics a sparsely filled record: many nulls are normal.
                if i == 0 {
                    json!({
                        "locationId": self.location_ids[i],
                        "orgId": self.org_id,
                        "locationTypeId": 1,
                        "name": "Flagship Store",
                        "description": "Downtown flagship",
                        "locationNumber": "001",
                        "country": "US",
                        "city": "Boston",
                        "postalCode": "02108",
                        "state": "MA",
                        "street": "1 Tremont St",
                        "latitude": 42.3572,
                        "longitude": -71.0605,
                        "shippingId": "SHIP-001",
                        "createdAt": created_at,
                        "updatedAt": updated_at,
                        "timezone": LOCATION_ZONES[i].iana_name(),
                    })
                } else {
                    json!({
                        "locationId": self.location_ids[i],
                        "orgId": self.org_id,
                        "locationTypeId": 2,
                        "name": format!("Outlet {i}"),
                        "description": null,
                        "locationNumber": null,
                        "country": "DE",
                        "city": "Berlin",
                        "postalCode": null,
                        "state": null,
                        "street": null,
                        "latitude": 52.52,
                        "longitude": 13.405,
                        "shippingId": null,
                        "createdAt": created_at,
                        "updatedAt": updated_at,
                        "timezone": LOCATION_ZONES[i].iana_name(),
                    })
                }
            })
            .collect()
    }

    /// The `/api/site` objects, one per location.
    pub fn sites(&self) -> Vec<Value> {
        (0..LOCATIONS)
            .map(|i| {
                json!({
                    "siteId": self.site_ids[i],
                    "locationId": self.location_ids[i],
                    "name": format!("Site {}", i + 1),
                    "timezone": LOCATION_ZONES[i].iana_name(),
                    "businessHours": {"open": "07:00", "close": "22:00"},
                })
            })
            .collect()
    }

    /// The `/api/zone` objects.
    pub fn zones(&self) -> Vec<Value> {
        let created = self.history_start - Duration::days(100);
        self.zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                // The field set and JSON types of a recorded real `/api/zone` list:
                // integer count settings, a device model as `deviceId`, `settings` null.
                json!({
                    "zoneId": z.id,
                    "orgId": self.org_id,
                    "name": z.name,
                    "sensorId": self.sensor_ids[i],
                    "deviceId": DEVICE_MODELS[i % DEVICE_MODELS.len()],
                    "countType": 1 + (i % 2) as i64,
                    "scaleFactor": 1,
                    "countFilter": (i % 3) as i64 / 2,
                    "countApplication": 1,
                    "perimeter": i % 4 == 0,
                    "disabled": false,
                    "settings": null,
                    "createdAt": format_timestamp(created + Duration::hours(i as i64)),
                    "updatedAt": format_timestamp(z.first_hour + Duration::milliseconds(250)),
                })
            })
            .collect()
    }

    /// The `/api/space` objects.
    pub fn spaces(&self) -> Vec<Value> {
        self.spaces
            .iter()
            .enumerate()
            .map(|(j, s)| {
                json!({
                    "spaceId": s.id,
                    "locationId": self.location_ids[j % LOCATIONS],
                    "name": s.name,
                    "maxCapacity": s.scale,
                })
            })
            .collect()
    }

    /// The `/api/sensor` objects, one per zone.
    pub fn sensors(&self) -> Vec<Value> {
        self.sensor_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({
                    "sensorId": id,
                    "siteId": self.site_ids[i % LOCATIONS],
                    "name": format!("Sensor {}", i + 1),
                    "serialNumber": format!("SN{:08X}", hash(&[self.seed, SALT_SENSOR, i as u64]) as u32),
                })
            })
            .collect()
    }
}
