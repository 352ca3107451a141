//! Path and query extractors whose rejections are the API's JSON errors: axum's own
//! answer a plain-text 400 (`/windows/abc`, `stream?after=abc`), and `docs/api.md`
//! promises JSON for every error. Each names the parameter at fault.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;
use hallq_engine::text::clip;

/// A path parameter that did not parse (400 `invalid_parameter`, naming it).
fn invalid(name: &str, message: String) -> ApiError {
    ApiError {
        field: Some(name.to_string()),
        ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }
}

/// Parameter `key` held `value`, which is not a `ty`.
fn unparsed(key: &str, ty: &str, value: &str) -> ApiError {
    invalid(
        key,
        format!("{key} must be {}, not {}", expected(ty), clip(value)),
    )
}

/// What a parameter of Rust type `ty` must be, in words.
fn expected(ty: &str) -> String {
    let whole = |max: &str| format!("a whole number from 0 to {max}");
    match ty.rsplit("::").next().unwrap_or(ty) {
        "u8" => whole("255"),
        "u16" => whole("65535"),
        "u32" => whole("4294967295"),
        "u64" | "usize" => whole("18446744073709551615"),
        "i32" | "i64" | "isize" => "a whole number".to_string(),
        "bool" => "true or false".to_string(),
        _ => "valid text".to_string(),
    }
}

/// Like [`axum::extract::Path`], with the API's JSON error.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let rejection = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => return Ok(Path(v)),
            Err(r) => r,
        };
        // The parameters' names, in order, to name the one at fault when the handler
        // takes them as a tuple.
        let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
            .await
            .map(|p| p.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default();
        let nth = |i: usize| names.get(i).cloned().unwrap_or_else(|| "path".into());
        Err(match rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.into_kind() {
                ErrorKind::ParseErrorAtKey {
                    key,
                    value,
                    expected_type,
                } => unparsed(&key, expected_type, &value),
                ErrorKind::ParseErrorAtIndex {
                    index,
                    value,
                    expected_type,
                } => unparsed(&nth(index), expected_type, &value),
                ErrorKind::ParseError {
                    value,
                    expected_type,
                } => unparsed(&nth(0), expected_type, &value),
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    invalid(&key, format!("{key} must be UTF-8 text"))
                }
                ErrorKind::DeserializeError { key, .. } => {
                    invalid(&key, format!("{key} is not valid here"))
                }
                _ => invalid("path", "the path's parameters are not valid".into()),
            },
            _ => invalid("path", "the path's parameters are not valid".into()),
        })
    }
}

/// Like [`axum::extract::Query`], with the API's JSON error naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let key = e.path().to_string();
                let key = if key == "." { "query".into() } else { key };
                let why = e.inner().to_string();
                invalid(&key, format!("{key}: {}", clip(&why)))
            })
    }
}
