//! Checking a tool's `structuredContent` against the `outputSchema` it declared.
//!
//! A tool that declares an output schema must return structured content that conforms to it
//! (MCP 2025-11-25, tools); a client that relies on the schema breaks in odd ways when it does
//! not. The host checks every result of such a tool that is not a tool error, with a compiled
//! validator per tool (the `jsonschema` crate: every draft, `$ref`s within the schema; no remote
//! references are fetched), and turns a violation into [`Error::OutputSchema`] naming the tool
//! and the first violation. A schema that does not compile is not enforced (and logged once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::value::RawValue;
use serde_json::Value;

use crate::Error;

/// The most compiled schemas kept; past it the cache starts over.
pub const MAX_CACHED_SCHEMAS: usize = 4096;

/// Compiled output schemas by exposed tool name.
#[derive(Default)]
pub(crate) struct OutputSchemas {
    cache: Mutex<HashMap<String, Compiled>>,
}

impl std::fmt::Debug for OutputSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSchemas")
            .field("n_cached", &lock(&self.cache).len())
            .finish()
    }
}

struct Compiled {
    schema: Value,
    /// `None` when the schema does not compile.
    validator: Option<Arc<jsonschema::Validator>>,
}

/// What a result says that the check needs.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Checked {
    #[serde(default)]
    structured_content: Option<Value>,
    #[serde(default)]
    is_error: Option<bool>,
}

impl OutputSchemas {
    /// Checks a result of tool `tool` (exposed name) of `client` against `schema`.
    pub(crate) fn check(
        &self,
        client: &str,
        tool: &str,
        schema: &Value,
        structured: Option<&Value>,
        is_error: bool,
    ) -> Result<(), Error> {
        if is_error {
            return Ok(());
        }
        let violation = |violation: String| Error::OutputSchema {
            client: client.to_owned(),
            tool: tool.to_owned(),
            violation,
        };
        let Some(structured) = structured else {
            return Err(violation(
                "the result has no structuredContent although the tool declares an outputSchema"
                    .to_owned(),
            ));
        };
        let Some(validator) = self.validator(client, tool, schema) else {
            return Ok(());
        };
        match validator.validate(structured) {
            Ok(()) => Ok(()),
            Err(error) => {
                let path = error.instance_path().to_string();
                let at = if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                };
                Err(violation(format!("at {at}: {error}")))
            }
        }
    }

    /// [`OutputSchemas::check`] for a result as it came (only `structuredContent` and `isError`
    /// are read).
    pub(crate) fn check_raw(
        &self,
        client: &str,
        tool: &str,
        schema: &Value,
        raw: &RawValue,
    ) -> Result<(), Error> {
        let checked: Checked =
            serde_json::from_str(raw.get()).map_err(|error| Error::OutputSchema {
                client: client.to_owned(),
                tool: tool.to_owned(),
                violation: format!("the result cannot be read: {error}"),
            })?;
        self.check(
            client,
            tool,
            schema,
            checked.structured_content.as_ref(),
            checked.is_error == Some(true),
        )
    }

    /// The compiled schema, compiled now if it is new or changed.
    fn validator(
        &self,
        client: &str,
        tool: &str,
        schema: &Value,
    ) -> Option<Arc<jsonschema::Validator>> {
        let mut cache = lock(&self.cache);
        if let Some(compiled) = cache
            .get(tool)
            .filter(|compiled| compiled.schema == *schema)
        {
            return compiled.validator.clone();
        }
        let validator = match jsonschema::validator_for(schema) {
            Ok(validator) => Some(Arc::new(validator)),
            Err(error) => {
                tracing::warn!(client, tool, error = %error, "the tool's outputSchema is not a valid JSON Schema; its results are not checked");
                None
            }
        };
        if cache.len() >= MAX_CACHED_SCHEMAS {
            cache.clear();
        }
        cache.insert(
            tool.to_owned(),
            Compiled {
                schema: schema.clone(),
                validator: validator.clone(),
            },
        );
        validator
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn violations_name_the_tool_and_the_first_problem() {
        let schemas = OutputSchemas::default();
        let schema = json!({
            "type": "object",
            "properties": {"sum": {"type": "number"}},
            "required": ["sum"],
        });
        assert!(schemas
            .check(
                "calc",
                "calc__add",
                &schema,
                Some(&json!({"sum": 3})),
                false
            )
            .is_ok());
        let error = schemas
            .check(
                "calc",
                "calc__add",
                &schema,
                Some(&json!({"sum": "3"})),
                false,
            )
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("calc__add") && text.contains("/sum"),
            "{text}"
        );
        let error = schemas
            .check("calc", "calc__add", &schema, None, false)
            .unwrap_err();
        assert!(
            error.to_string().contains("no structuredContent"),
            "{error}"
        );
        // A tool error is not checked.
        assert!(schemas
            .check("calc", "calc__add", &schema, None, true)
            .is_ok());
        // A schema that does not compile is not enforced.
        let broken = json!({"type": 12});
        assert!(schemas
            .check("calc", "calc__odd", &broken, Some(&json!(1)), false)
            .is_ok());
        let raw =
            RawValue::from_string(r#"{"content":[],"structuredContent":{}}"#.to_owned()).unwrap();
        let error = schemas
            .check_raw("calc", "calc__add", &schema, &raw)
            .unwrap_err();
        assert!(error.to_string().contains("sum"), "{error}");
    }
}
