//! A string that cannot be printed by accident: secrets (client secret, access
//! token) are wrapped in [`Secret`] from the moment they are read.

use std::fmt;

/// A secret value. `Debug` prints a placeholder and there is no `Display`, so
/// a secret can reach a log line, error or state only through [`Secret::expose`],
/// which is called at exactly the places that send it over the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (safe to ask: it reveals nothing useful).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**redacted**)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let secret = Secret::new("hunter2-canary");
        let printed = format!("{secret:?} {:?}", Some(&secret));
        assert!(!printed.contains("hunter2-canary"), "{printed}");
    }
}
