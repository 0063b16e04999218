//! The one place where errors become HTTP responses. Domain errors map by variant (404, 409, 422);
//! errors poem raises before a handler runs (malformed JSON, a bad UUID in the path) are rewritten
//! by [`json_error_body`] into the same JSON body, so every error a client sees has one shape.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use visprompt_domain::{DomainError, Entity};
use visprompt_runtime::{PipelineError, SourceError};

/// What every error response carries.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable machine-readable kind: `bad_request`, `unauthorized`, `not_found`, `conflict`,
    /// `payload_too_large`, `invalid_value`, `internal`.
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
    /// The JSON path of the offending field, when one field is to blame.
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }
}

/// Every error an operation can answer with; listed in each operation of the OpenAPI document.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed (syntax, types, a path parameter that is not a UUID).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// A bearer token is required (setting `API_TOKEN`) and was missing or wrong.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The addressed resource does not exist.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with stored state (duplicate name, resource in use).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is larger than allowed.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// A value is invalid; `field` names it.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// The server failed; details are in its log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(Json(ErrorBody::new("bad_request", message)))
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(Json(ErrorBody {
            code: "invalid_value".into(),
            message: message.into(),
            field: Some(field.into()),
        }))
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::PayloadTooLarge(Json(ErrorBody::new("payload_too_large", message)))
    }

    pub fn internal() -> Self {
        Self::Internal(Json(ErrorBody::new(
            "internal",
            "the server failed to complete the request; see its log",
        )))
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::NotFound {
                entity: Entity::ActiveProject,
                ..
            } => Self::NotFound(Json(ErrorBody::new("not_found", "no project is active"))),
            DomainError::NotFound { .. } => {
                Self::NotFound(Json(ErrorBody::new("not_found", err.to_string())))
            }
            DomainError::Conflict { field, message } => Self::Conflict(Json(ErrorBody {
                code: "conflict".into(),
                message,
                field,
            })),
            DomainError::Invalid { field, message } => {
                let message = format!("{field}: {message}");
                Self::invalid(field, message)
            }
            DomainError::Storage(source) => {
                tracing::error!(message = "Storage failure.", error = %error_chain(&*source));
                Self::internal()
            }
        }
    }
}

impl ApiError {
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(Json(ErrorBody::new("conflict", message)))
    }
}

/// Requests the live pipeline cannot serve in its current state are conflicts with that state
/// (409), never server errors: no frame yet, a source in error, another project running.
impl From<PipelineError> for ApiError {
    fn from(err: PipelineError) -> Self {
        match err {
            PipelineError::Source(SourceError::OutOfRange { .. }) => {
                Self::invalid("index", err.to_string())
            }
            PipelineError::Stopped => {
                tracing::error!(message = "Pipeline request failed.", error = %err);
                Self::internal()
            }
            other => Self::conflict(other.to_string()),
        }
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Rewrites an error that poem produced on its own (not one of ours) into the JSON error body.
/// A value that broke a schema constraint (length, range, pattern) is a 422 naming the field, like
/// the domain's own validation; other request errors are 400; statuses we document are kept.
pub fn json_error_body(err: poem::Error) -> Response {
    let status = err.status();
    let message = err.to_string();
    let response = err.into_response();
    // Our own `ApiError`s travel as errors too; they already carry the JSON body.
    if response
        .content_type()
        .is_some_and(|ct| ct.starts_with("application/json"))
    {
        return response;
    }
    if status.is_server_error() {
        tracing::error!(message = "Unhandled server error.", error = %message);
        return ApiError::internal().into_response();
    }
    if status == StatusCode::BAD_REQUEST && message.contains("verification failed") {
        let field = constrained_field(&message);
        // The parser's wording names its own types; people need the field and the rule.
        let message = match (&field, plain_constraint(&message)) {
            (Some(field), Some(rule)) => format!("{field}: {rule}"),
            (None, Some(rule)) => rule,
            _ => message,
        };
        return Json(ErrorBody {
            code: "invalid_value".into(),
            message,
            field,
        })
        .with_status(StatusCode::UNPROCESSABLE_ENTITY)
        .into_response();
    }
    let (status, code, message) = match status {
        StatusCode::UNAUTHORIZED => (status, "unauthorized", message),
        StatusCode::FORBIDDEN => (status, "forbidden", message),
        StatusCode::NOT_FOUND => (status, "not_found", message),
        StatusCode::METHOD_NOT_ALLOWED => (status, "method_not_allowed", message),
        StatusCode::PAYLOAD_TOO_LARGE => (status, "payload_too_large", message),
        _ if message.starts_with("failed to parse path") => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("an id in the path is not a UUID ({message})"),
        ),
        _ => (StatusCode::BAD_REQUEST, "bad_request", message),
    };
    Json(ErrorBody::new(code, message))
        .with_status(status)
        .into_response()
}

/// The rule a value broke, in words, from the validator poem-openapi names after
/// "verification failed." (`maximum(1, exclusive: true)` → "must be less than 1").
fn plain_constraint(message: &str) -> Option<String> {
    let rest = &message[message.find("verification failed.")? + "verification failed.".len()..];
    let rest = rest.trim_start();
    let open = rest.find('(')?;
    let (name, args) = (&rest[..open], &rest[open + 1..]);
    // Arguments end at the closing parenthesis; a pattern may hold parentheses of its own, and
    // is quoted, so it ends at the first `")`.
    let args = if let Some(quoted) = args.strip_prefix('"') {
        &quoted[..quoted.find("\")")?]
    } else {
        &args[..args.find(')')?]
    };
    let (value, exclusive) = match args.split_once(", exclusive: ") {
        Some((value, flag)) => (value, flag == "true"),
        None => (args, false),
    };
    Some(match name {
        "maximum" if exclusive => format!("must be less than {value}"),
        "maximum" => format!("must be at most {value}"),
        "minimum" if exclusive => format!("must be greater than {value}"),
        "minimum" => format!("must be at least {value}"),
        "minLength" if value == "1" => "must not be empty".to_string(),
        "minLength" => format!("must be at least {value} characters long"),
        "maxLength" => format!("must be at most {value} characters long"),
        "minItems" => format!("must have at least {value} item(s)"),
        "maxItems" => format!("must have at most {value} items"),
        "multipleOf" => format!("must be a multiple of {value}"),
        "uniqueItems" => "must not repeat an item".to_string(),
        "pattern" => format!("does not have the expected form (pattern {value})"),
        _ => return None,
    })
}

/// The field path in poem-openapi's message: the query parameter, or the chain of object fields
/// (`field `config` ... field `url``) joined with dots.
fn constrained_field(message: &str) -> Option<String> {
    let between = |marker: &str| -> Vec<&str> {
        message
            .match_indices(marker)
            .filter_map(|(i, _)| {
                let rest = &message[i + marker.len()..];
                rest.find('`').map(|end| &rest[..end])
            })
            .collect()
    };
    let params = between("parameter `");
    if let Some(p) = params.first() {
        return Some((*p).to_owned());
    }
    let fields = between("field `");
    (!fields.is_empty()).then(|| fields.join("."))
}

#[cfg(test)]
mod plain_constraint_tests {
    use super::plain_constraint;

    #[test]
    fn validators_read_as_rules() {
        let cases = [
            (
                "failed to parse \"ClassicalConfig\": field `confidence_threshold` verification failed. maximum(1, exclusive: true) (occurred while parsing \"ModelConfigBody\")",
                "must be less than 1",
            ),
            (
                "field `x` verification failed. minimum(0, exclusive: false)",
                "must be at least 0",
            ),
            (
                "field `name` verification failed. minLength(1)",
                "must not be empty",
            ),
            (
                "field `name` verification failed. maxLength(100)",
                "must be at most 100 characters long",
            ),
            (
                "field `url` verification failed. pattern(\"^(https?)://(a|b)\") (occurred while parsing \"X\")",
                "does not have the expected form (pattern ^(https?)://(a|b))",
            ),
        ];
        for (message, rule) in cases {
            assert_eq!(
                plain_constraint(message).as_deref(),
                Some(rule),
                "{message}"
            );
        }
        assert_eq!(
            plain_constraint("field `x` verification failed. somethingNew(3)"),
            None
        );
        assert_eq!(plain_constraint("no validator here"), None);
    }
}
