//! Fivetran's destination naming rules, so every table and column name we emit
//! is already in normalized form and the warehouse looks the same whatever
//! naming mode the destination uses.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// Normalizes a column name the way Fivetran does at the destination.
///
/// `recordDate_hour_1` becomes `record_date_hour_1`, `occupancy(max)` becomes
/// `occupancy_max_`, `1abc` becomes `_1_abc`.
pub fn normalize_column_name(name: &str) -> String {
    let folded: String = if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        name.to_owned()
    } else {
        // Strip accents: decompose, drop combining marks, recompose.
        name.nfd()
            .filter(|c| !is_combining_mark(*c))
            .nfc()
            .collect()
    };

    let mut normalized = String::with_capacity(folded.len() + 4);
    // The first character is compared with an imaginary non-digit, non-lower-case one.
    let mut previous: Option<char> = None;
    for c in folded.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        };
        let previous_is_lower = previous.is_some_and(|p| p.is_ascii_lowercase());
        let previous_is_digit = previous.is_some_and(|p| p.is_ascii_digit());
        let camel_boundary = previous_is_lower && c.is_ascii_uppercase();
        let digit_boundary = previous_is_digit != c.is_ascii_digit();
        if camel_boundary || digit_boundary {
            push_underscore(&mut normalized);
        }
        if c == '_' {
            push_underscore(&mut normalized);
        } else {
            normalized.push(c.to_ascii_lowercase());
        }
        previous = Some(c);
    }
    if normalized.is_empty() {
        normalized.push('_');
    }
    normalized
}

/// Normalizes a table name: the column rule, then leading underscores before a
/// letter are dropped.
pub fn normalize_table_name(name: &str) -> String {
    let column_form = normalize_column_name(name);
    let trimmed = column_form.trim_start_matches('_');
    if trimmed.starts_with(|c: char| c.is_ascii_alphabetic()) {
        trimmed.to_owned()
    } else {
        column_form
    }
}

/// Appends `_` unless the name already ends with one, which collapses runs.
fn push_underscore(name: &mut String) {
    if !name.ends_with('_') {
        name.push('_');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(source: &str, expected: &str) {
        assert_eq!(normalize_column_name(source), expected, "column {source:?}");
    }

    #[test]
    fn column_names_follow_fivetran_rules() {
        check("recordDate_hour_1", "record_date_hour_1");
        check("zoneId", "zone_id");
        check("spaceId", "space_id");
        check("siteId", "site_id");
        check("locationId", "location_id");
        check("sensorId", "sensor_id");
        check("sumins", "sumins");
        check("maxoccupancy", "maxoccupancy");
        check("occupancy(max)", "occupancy_max_");
        check("ZoneID", "zone_id");
        check("HTTPServer", "httpserver");
        check("abc123", "abc_123");
        check("v2", "v_2");
        check("1abc", "_1_abc");
        check("Café Crème", "cafe_creme");
        check("createdAt", "created_at");
        check("a__b", "a_b");
        check("", "_");
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for name in [
            "recordDate_hour_1",
            "occupancy(avg)",
            "1abc",
            "Café Crème",
            "HTTPServer",
        ] {
            let once = normalize_column_name(name);
            assert_eq!(normalize_column_name(&once), once);
        }
    }

    #[test]
    fn table_names_drop_leading_underscores_before_letters() {
        assert_eq!(normalize_table_name("_traffic"), "traffic");
        assert_eq!(normalize_table_name("Zone"), "zone");
        assert_eq!(normalize_table_name("1abc"), "_1_abc");
    }
}
