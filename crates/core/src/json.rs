//! Reading JSON input strictly: a field the target does not know is refused, naming it
//! (`promotions[0].scope.skuz`), as is any other problem (`lines[2].quantity`). A typo in an
//! operator's rule must not pass as "no restriction".
//!
//! Types stay lenient themselves (no `deny_unknown_fields` on the promotion types), so records
//! stored before a field was renamed still load; the strictness is at the edges that take
//! input: the API's bodies and the CLI's files.

use crate::FieldError;
use serde::de::DeserializeOwned;

/// Parses `text`, refusing unknown fields; the error names the field path.
pub fn from_slice<T: DeserializeOwned>(text: &[u8]) -> Result<T, FieldError> {
    let mut unknown = None;
    let mut de = serde_json::Deserializer::from_slice(text);
    let parsed = serde_ignored::deserialize(&mut de, |path| {
        unknown.get_or_insert_with(|| field_path(&path));
    })
    .and_then(|value| de.end().map(|()| value));
    match (parsed, unknown) {
        (Ok(value), None) => Ok(value),
        (Ok(_), Some(field)) => Err(unknown_field(field)),
        // Parsed again only to find where it went wrong.
        (Err(_), _) => {
            let mut de = serde_json::Deserializer::from_slice(text);
            Err(match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => path_error(e),
                // What follows the value is the problem.
                Ok(_) => FieldError::new(
                    "",
                    de.end()
                        .err()
                        .map_or("malformed JSON".to_owned(), |e| e.to_string()),
                ),
            })
        }
    }
}

/// [`from_slice`] for JSON already parsed into a value.
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, FieldError> {
    let mut unknown = None;
    let parsed = serde_ignored::deserialize(value, |path| {
        unknown.get_or_insert_with(|| field_path(&path));
    });
    match (parsed, unknown) {
        (Ok(value), None) => Ok(value),
        (Ok(_), Some(field)) => Err(unknown_field(field)),
        (Err(_), _) => match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(_) => Err(FieldError::new("", "malformed JSON")),
            Err(e) => Err(path_error(e)),
        },
    }
}

fn unknown_field(field: String) -> FieldError {
    FieldError::new(field, "unknown field")
}

/// The problem at its path. A missing field is found at the end of the object that lacks it, and
/// an unknown one of a flattened object at the end of the outer one, so the path names that
/// object; the field is the one the message names.
pub fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> FieldError {
    let path = e.path().to_string();
    let reason = e.into_inner().to_string();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| reason.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    let field = match (path.as_str(), named) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => String::new(),
        (_, Some(name)) if !path.ends_with(name) => format!("{path}.{name}"),
        _ => path,
    };
    FieldError::new(field, reason)
}

/// `promotions[0].scope.skuz`, as serde_path_to_error writes paths.
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Scope {
        #[serde(default)]
        skus: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    struct Rule {
        off: i64,
        #[serde(default)]
        scope: Option<Scope>,
    }

    #[derive(Debug, Deserialize)]
    struct Body {
        rules: Vec<Rule>,
    }

    fn field(text: &str) -> Result<String, String> {
        match from_slice::<Body>(text.as_bytes()) {
            Ok(b) => Err(format!("parsed: {b:?}")),
            Err(e) => Ok(e.field),
        }
    }

    #[test]
    fn names_unknown_missing_and_bad_fields() {
        let ok = r#"{"rules": [{"off": 1, "scope": {"skus": ["a"]}}]}"#;
        let body = from_slice::<Body>(ok.as_bytes()).map_err(|e| e.to_string());
        let skus = body.map(|b| {
            (
                b.rules[0].off,
                b.rules[0].scope.as_ref().map(|s| s.skus.len()),
            )
        });
        assert_eq!(skus, Ok((1, Some(1))));
        let typo = r#"{"rules": [{"off": 1}, {"off": 2, "scope": {"skuz": ["a"]}}]}"#;
        assert_eq!(field(typo), Ok("rules[1].scope.skuz".into()));
        assert_eq!(field(r#"{"rules": [{}]}"#), Ok("rules[0].off".into()));
        assert_eq!(
            field(r#"{"rules": [{"off": "x"}]}"#),
            Ok("rules[0].off".into())
        );
        assert_eq!(field(r#"{"rules": []} extra"#), Ok("".into()));
        let value: serde_json::Value = serde_json::from_str(typo).unwrap_or_default();
        assert_eq!(
            from_value::<Body>(&value).map_err(|e| e.field).err(),
            Some("rules[1].scope.skuz".into())
        );
    }
}
