//! The closed set of ways a OneStop RPC can fail, mapped once to `tonic::Status`.
//!
//! Handlers return `ApiError`; nothing else in the code base builds a `Status`
//! for a caller's mistake. Internal errors are logged in full here and reach
//! the caller masked, so a database message never leaks over the wire.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `ErrorInfo.domain` of every OneStop error.
pub const ERROR_DOMAIN: &str = "onestop.kr";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input; one violation per offending field. Nothing was stored.
    #[error("invalid argument: {0}")]
    InvalidArgument(Violations),
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already; `metadata` names it (e.g. its id).
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
        metadata: Vec<(&'static str, String)>,
    },
    /// Illegal state move or a request that conflicts with recorded state.
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    OutOfRange {
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (the database) is unreachable; the call may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// The call lost a race with another (a serialization failure, a
    /// deadlock) and changed nothing; the same call may be retried at once.
    #[error("{0}")]
    Aborted(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// Whether the call lost a race with a concurrent transaction (a
    /// serialization failure or a deadlock rolled it back), also when the
    /// database error travelled inside another error.
    pub fn lost_a_race(&self) -> bool {
        match self {
            Self::Aborted(_) => true,
            Self::Internal(source) => source
                .chain()
                .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
                .any(|error| {
                    matches!(error, sqlx::Error::Database(db)
                        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
                }),
            _ => false,
        }
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{what} {id} not found"))
    }

    pub fn failed_precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// A single field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut violations = Violations::default();
        violations.add(field, description);
        Self::InvalidArgument(violations)
    }

    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::OutOfRange { .. } => Code::OutOfRange,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Aborted(_) => Code::Aborted,
            Self::Internal(_) => Code::Internal,
        }
    }
}

/// The database's answer for a Postgres error code (SQLSTATE) that a
/// retry can overcome, or that a caller's input caused; None for the rest.
fn classify_database_error(code: &str) -> Option<ApiError> {
    Some(match code {
        // serialization_failure, deadlock_detected: the transaction was
        // rolled back whole, so a retry is safe and likely to succeed.
        "40001" | "40P01" => ApiError::Aborted("conflicting concurrent change, retry".into()),
        // admin_shutdown, crash_shutdown, cannot_connect_now (starting up or
        // shutting down), too_many_connections, and connection failures
        // (class 08): the database is going away or not there yet.
        "57P01" | "57P02" | "57P03" | "53300" => {
            ApiError::Unavailable("database unavailable, retry later".into())
        }
        code if code.starts_with("08") => {
            ApiError::Unavailable("database unavailable, retry later".into())
        }
        // query_canceled: the statement timeout; the database is too busy
        // to answer in time.
        "57014" => ApiError::Unavailable("database busy, retry later".into()),
        // Text or a time the database cannot store, past what validation
        // caught: still the caller's input, and nothing was stored.
        "22021" | "22P05" => ApiError::invalid("", "text with characters that cannot be stored"),
        "22008" => ApiError::invalid("", "a date or time out of range"),
        _ => return None,
    })
}

/// What the caller is told about a database error that is not the
/// server's fault; None for one that is.
fn classify_sqlx_error(error: &sqlx::Error) -> Option<ApiError> {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            let mapped = classify_database_error(&code)?;
            // The code only: the message may quote stored values.
            tracing::warn!(code = %code, "database refused the statement");
            Some(mapped)
        }
        // A connection lost while negotiating TLS (sslmode=prefer and up)
        // fails as Tls or as a Protocol error on the SSLRequest answer:
        // the database is just as unreachable.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed => {
            tracing::warn!(error = %error, "database unavailable");
            Some(ApiError::Unavailable(
                "database unavailable, retry later".into(),
            ))
        }
        _ => None,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        classify_sqlx_error(&error).unwrap_or_else(|| Self::Internal(error.into()))
    }
}

fn error_info(reason: &str, metadata: HashMap<String, String>) -> ErrorDetails {
    ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata)
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        match error {
            ApiError::InvalidArgument(violations) => {
                let violations = violations.shown();
                Status::with_error_details(
                    code,
                    violations.summary(),
                    ErrorDetails::with_bad_request(violations.0),
                )
            }
            ApiError::AlreadyExists {
                reason,
                message,
                metadata,
            } => {
                let metadata = metadata
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value))
                    .collect();
                Status::with_error_details(code, message, error_info(reason, metadata))
            }
            ApiError::FailedPrecondition { reason, message }
            | ApiError::OutOfRange { reason, message } => {
                Status::with_error_details(code, message, error_info(reason, HashMap::new()))
            }
            ApiError::Internal(source) => {
                // A database error that travelled inside another error.
                if let Some(mapped) = source
                    .chain()
                    .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
                    .and_then(classify_sqlx_error)
                {
                    return mapped.into();
                }
                tracing::error!(error = ?source, "internal error");
                Status::internal("internal error")
            }
            other => Status::new(code, other.to_string()),
        }
    }
}

/// Violations one answer names at most (see [`Violations::shown`]).
pub const MAX_VIOLATIONS_SHOWN: usize = 20;
/// The longest field name or description an answer carries.
pub const MAX_VIOLATION_TEXT: usize = 100;

/// Field violations gathered while validating one request, so the caller
/// learns about every bad field at once rather than one per round trip.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|violation| violation.field.as_str())
    }

    /// Parses a message field the request must carry: `required` under
    /// `field` when it is missing, otherwise whatever `parse` records.
    pub fn required<M, T>(
        &mut self,
        field: &str,
        message: Option<&M>,
        parse: impl FnOnce(&M, &str, &mut Self) -> Option<T>,
    ) -> Option<T> {
        match message {
            Some(message) => parse(message, field, self),
            None => {
                self.add(field, "required");
                None
            }
        }
    }

    /// Records the error of a parse under `field` and returns the value.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: impl Into<String>,
        parsed: Result<T, E>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// An id this API handed out (a UUID), or a violation under `field`.
    pub fn id(&mut self, field: impl Into<String>, text: &str) -> Option<uuid::Uuid> {
        let field = field.into();
        if text.is_empty() {
            self.add(field, "required");
            return None;
        }
        let id = uuid::Uuid::parse_str(text).ok();
        if id.is_none() {
            self.add(field, ID_FORMAT);
        }
        id
    }

    /// Adds every violation of `other` with `prefix.` before its field path.
    pub fn extend_nested(&mut self, prefix: &str, other: Violations) {
        for violation in other.0 {
            self.add(
                format!("{prefix}.{}", violation.field),
                violation.description,
            );
        }
    }

    /// `Ok(())` when nothing was violated.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArgument(self))
        }
    }

    /// The value `build` assembles from the parsed parts when nothing was
    /// violated, or every violation. `build` returns `None` only when a part
    /// is missing, and every parse that leaves a part missing records why,
    /// so callers can write `|| Some(Command { a: a?, b: b? })`.
    pub fn finish_with<T>(mut self, build: impl FnOnce() -> Option<T>) -> Result<T, Violations> {
        if !self.0.is_empty() {
            return Err(self);
        }
        match build() {
            Some(value) => Ok(value),
            None => {
                debug_assert!(false, "a parse left a part missing without a violation");
                self.add("", "invalid request");
                Err(self)
            }
        }
    }

    /// The violations an answer carries: the first
    /// [`MAX_VIOLATIONS_SHOWN`], each cut to [`MAX_VIOLATION_TEXT`]
    /// characters, and a last one saying how many more there were. A
    /// status travels in HTTP/2 headers, which peers refuse past 16 KiB, so
    /// a request with hundreds of bad entries, or one whose violation
    /// quotes a huge value, must not make its own answer unreadable.
    fn shown(self) -> Self {
        let total = self.0.len();
        let cut = |text: String| -> String {
            if text.chars().count() > MAX_VIOLATION_TEXT {
                let mut short: String = text.chars().take(MAX_VIOLATION_TEXT).collect();
                short.push('…');
                short
            } else {
                text
            }
        };
        let mut shown: Vec<FieldViolation> = self
            .0
            .into_iter()
            .take(MAX_VIOLATIONS_SHOWN)
            .map(|violation| FieldViolation::new(cut(violation.field), cut(violation.description)))
            .collect();
        if total > MAX_VIOLATIONS_SHOWN {
            shown.push(FieldViolation::new(
                "",
                format!("and {} more", total - MAX_VIOLATIONS_SHOWN),
            ));
        }
        Self(shown)
    }

    fn summary(&self) -> String {
        let fields: Vec<&str> = self.fields().collect();
        format!("invalid fields: {}", fields.join(", "))
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> Self {
        ApiError::InvalidArgument(violations)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Runs `attempt` again, up to three times in all, while it loses a race
/// with a concurrent transaction (ABORTED: a deadlock or serialization
/// failure rolled it back and it changed nothing), so a partner sees the
/// conflict only when it persists.
pub async fn retry_aborted<T, F, Fut>(mut attempt: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if tries < 3 && error.lost_a_race() => {
                tries += 1;
                tracing::debug!(tries, "lost a race with a concurrent change; again");
            }
            other => return other,
        }
    }
}

const ID_FORMAT: &str = "a UUID returned by this API";

/// An id the API handed out, or INVALID_ARGUMENT under `field`.
pub fn parse_id(field: &str, text: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|_| ApiError::invalid(field, ID_FORMAT))
}

/// True when `error` is a unique-constraint violation, e.g. a concurrent
/// insert of the same natural key that won the race.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn an_answer_names_at_most_twenty_violations_each_cut_short() {
        let mut violations = Violations::default();
        for i in 0..500 {
            violations.add(format!("codes[{i}]"), "가".repeat(5000));
        }
        let status = Status::from(ApiError::InvalidArgument(violations));
        let shown = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(shown.len(), MAX_VIOLATIONS_SHOWN + 1);
        assert!(
            shown
                .iter()
                .all(|v| v.description.chars().count() <= MAX_VIOLATION_TEXT + 1)
        );
        assert_eq!(shown.last().unwrap().description, "and 480 more");
        // Far below the 16 KiB a peer accepts in headers.
        assert!(status.details().len() < 16 * 1024 / 2);
    }
}
