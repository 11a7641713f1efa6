//! Logging in Fivetran's format: one JSON object per line,
//! `{"level": "INFO"|"WARNING"|"SEVERE", "message": ..., "message-origin": "sdk_connector"}`,
//! escaped by serde so quotes and newlines in messages stay valid JSON.

use std::{fmt::Write as _, io::Write as _};

use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    Layer,
    filter::{LevelFilter, Targets},
    fmt::MakeWriter,
    layer::{Context, SubscriberExt},
    registry::Registry,
    util::SubscriberInitExt,
};

/// Installs the global subscriber: our own events (this library's and those
/// of `caller`, the crate that installs it, e.g. the binary's commands) at
/// `level` and above, other crates' warnings and errors, written as Fivetran
/// JSON lines to `writer`. Calling it twice is harmless (the second call does
/// nothing).
pub fn init<W>(writer: W, level: Level, caller: &'static str)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target(env!("CARGO_CRATE_NAME"), level)
        .with_target(caller, level);
    let _ = Registry::default()
        .with(FivetranJsonLayer { writer }.with_filter(filter))
        .try_init();
}

/// Formats one event as one Fivetran log line.
pub fn format_line(level: &Level, message: &str) -> String {
    let level = match *level {
        Level::ERROR => "SEVERE",
        Level::WARN => "WARNING",
        _ => "INFO",
    };
    serde_json::json!({
        "level": level,
        "message": message,
        "message-origin": "sdk_connector",
    })
    .to_string()
}

struct FivetranJsonLayer<W> {
    writer: W,
}

impl<S, W> Layer<S> for FivetranJsonLayer<W>
where
    S: Subscriber,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let mut message = visitor.message;
        if !visitor.fields.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&visitor.fields);
        }
        let mut line = format_line(event.metadata().level(), &message);
        line.push('\n');
        // One write per line so concurrent events never interleave.
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

/// Collects the message and the fields as `key=value` pairs.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn separator(&mut self) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.separator();
            let _ = write!(self.fields, "{}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.separator();
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_valid_json_with_fivetran_levels() {
        let line = format_line(&Level::WARN, "quote \" and\nnewline");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["level"], "WARNING");
        assert_eq!(parsed["message"], "quote \" and\nnewline");
        assert_eq!(parsed["message-origin"], "sdk_connector");
        assert!(format_line(&Level::ERROR, "x").contains("\"SEVERE\""));
        assert!(format_line(&Level::DEBUG, "x").contains("\"INFO\""));
    }
}
