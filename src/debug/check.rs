//! `configuration --test`: the setup form the connector declares and its connection test run
//! against a configuration file, through the same service Fivetran calls.

use std::{collections::HashMap, fmt};

use super::tester::{self, FormField};
use crate::grpc::service::ConnectorService;

/// The form and, when asked, the outcome of each connection test.
#[derive(Debug)]
pub struct ConfigurationCheck {
    /// The form's fields, in order.
    pub fields: Vec<FormField>,
    /// Each declared test (label) and its outcome; empty when tests were not run.
    pub tests: Vec<(String, Result<(), String>)>,
    /// Why the form itself could not be read, if it could not.
    pub form_error: Option<String>,
}

impl ConfigurationCheck {
    /// Whether the form was read and every test that ran passed.
    pub fn passed(&self) -> bool {
        self.form_error.is_none() && self.tests.iter().all(|(_, outcome)| outcome.is_ok())
    }
}

/// Reads the form and, with `run_tests`, runs each declared test against `configuration`.
pub async fn check_configuration(
    configuration: HashMap<String, String>,
    run_tests: bool,
) -> ConfigurationCheck {
    let service = ConnectorService::default();
    let (fields, declared) = match tester::configuration_form(&service).await {
        Ok(form) => form,
        Err(status) => {
            return ConfigurationCheck {
                fields: Vec::new(),
                tests: Vec::new(),
                form_error: Some(status.to_string()),
            };
        }
    };
    let mut tests = Vec::new();
    if run_tests {
        for (name, label) in declared {
            let outcome = tester::run_test(&service, &name, configuration.clone()).await;
            tests.push((label, outcome));
        }
    }
    ConfigurationCheck {
        fields,
        tests,
        form_error: None,
    }
}

impl fmt::Display for ConfigurationCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(error) = &self.form_error {
            return write!(f, "ConfigurationForm failed: {error}");
        }
        writeln!(f, "Configuration form:")?;
        for field in &self.fields {
            let notes = match (field.required, field.secret) {
                (true, true) => " (required, secret)",
                (true, false) => " (required)",
                (false, true) => " (secret)",
                (false, false) => "",
            };
            writeln!(f, "  {:<20} {}{notes}", field.name, field.label)?;
        }
        if self.tests.is_empty() {
            return write!(f, "(tests not run: add --test)");
        }
        for (index, (label, outcome)) in self.tests.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            match outcome {
                Ok(()) => write!(f, "Test {label:?}: PASSED")?,
                Err(message) => write!(f, "Test {label:?}: FAILED: {message}")?,
            }
        }
        Ok(())
    }
}
