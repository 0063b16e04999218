//! Runs a SurrealQL script as one transaction and maps its outcome to the domain at this boundary:
//! rule violations the script `THROW`s and unique-index violations become `NotFound` / `Conflict`,
//! write conflicts with concurrent transactions are retried, everything else is logged with its
//! cause chain and becomes `DomainError::Storage`.
//!
//! Scripts signal rule violations with `THROW 'vp|<code>|<args…>'`; [`thrown`] is the one place
//! that turns those codes into domain errors, so scripts never compose user-facing messages.

use std::time::Duration;

use surrealdb::types::{QueryError, SurrealValue, Value, Variables};
use visprompt_domain::{DomainError, Entity};

use crate::{StoreError, SurrealRepository};

/// How often a script that lost a write conflict is run again. Conflicting writers retry with a
/// randomised, growing delay, so even 20 writers of one record all get through within this many
/// rounds in practice; beyond that the store is overloaded and saying so is better than waiting.
const MAX_ATTEMPTS: u32 = 16;
/// The first retry waits up to this long; each further one doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// A unique index of the schema and the conflict reported when a write hits it.
struct UniqueRule {
    index: &'static str,
    field: &'static str,
    message: String,
}

/// One script with its parameters. `body` runs between `BEGIN` and `COMMIT`; the value of its
/// last statement is the script's result.
pub(crate) struct Script {
    operation: &'static str,
    body: &'static str,
    vars: Variables,
    unique: Vec<UniqueRule>,
}

impl Script {
    pub(crate) fn new(operation: &'static str, body: &'static str) -> Self {
        Self {
            operation,
            body,
            vars: Variables::new(),
            unique: Vec::new(),
        }
    }

    pub(crate) fn bind(mut self, name: &str, value: impl SurrealValue) -> Self {
        self.vars.insert(name, value);
        self
    }

    /// Reports a violation of the unique index `index` as a conflict on `field`.
    pub(crate) fn unique(
        mut self,
        index: &'static str,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        self.unique.push(UniqueRule {
            index,
            field,
            message: message.into(),
        });
        self
    }
}

/// What became of one failed attempt.
enum Failure {
    /// A concurrent transaction committed a conflicting write first; running again may succeed.
    Retry(surrealdb::Error),
    Fail(DomainError),
}

impl SurrealRepository {
    /// Runs the script and decodes the value of its last statement as `T`.
    pub(crate) async fn run<T: SurrealValue>(&self, script: Script) -> Result<T, DomainError> {
        let operation = script.operation;
        let value = self.run_value(script).await?;
        T::from_value(value).map_err(|e| {
            storage(StoreError::Decode {
                operation,
                message: e.to_string(),
            })
        })
    }

    async fn run_value(&self, script: Script) -> Result<Value, DomainError> {
        let sql = format!("BEGIN TRANSACTION;\n{}\nCOMMIT TRANSACTION;", script.body);
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(&sql, &script).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            match failure {
                Failure::Retry(source) if attempt >= MAX_ATTEMPTS => {
                    return Err(storage(StoreError::Contention {
                        operation: script.operation,
                        attempts: attempt,
                        source,
                    }));
                }
                Failure::Retry(source) => {
                    tracing::debug!(
                        message = "Write conflict, retrying.",
                        operation = script.operation,
                        attempt,
                        error = %source
                    );
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Failure::Fail(error) => return Err(error),
            }
        }
    }

    async fn attempt(&self, sql: &str, script: &Script) -> Result<Value, Failure> {
        let mut response = self
            .db
            .query(sql)
            .bind(script.vars.clone())
            .await
            .map_err(|e| classify(e, script))?;
        let statements = response.num_statements();
        if let Some(error) = primary_error(response.take_errors()) {
            return Err(classify(error, script));
        }
        // The last result belongs to `COMMIT`; the one before it is the body's last statement.
        let last = statements.saturating_sub(2);
        response
            .take::<Value>(last)
            .map_err(|e| classify(e, script))
    }
}

/// Picks the error that explains a failed transaction. When one statement fails, SurrealDB also
/// reports every other statement of the transaction as "not executed" or "cancelled"; those are
/// consequences, so the first other error is the cause (or `COMMIT`'s own, e.g. a conflict).
pub(crate) fn primary_error(
    errors: std::collections::HashMap<usize, surrealdb::Error>,
) -> Option<surrealdb::Error> {
    let mut errors: Vec<(usize, surrealdb::Error)> = errors.into_iter().collect();
    errors.sort_by_key(|(index, _)| *index);
    let is_consequence = |e: &surrealdb::Error| {
        matches!(
            e.query_details(),
            Some(QueryError::NotExecuted | QueryError::Cancelled)
        )
    };
    let cause = errors.iter().position(|(_, e)| !is_consequence(e));
    match cause {
        Some(i) => Some(errors.swap_remove(i).1),
        None => errors.pop().map(|(_, e)| e),
    }
}

fn classify(error: surrealdb::Error, script: &Script) -> Failure {
    if matches!(error.query_details(), Some(QueryError::TransactionConflict)) {
        return Failure::Retry(error);
    }
    if error.is_thrown()
        && let Some(domain) = thrown(error.message())
    {
        return Failure::Fail(domain);
    }
    if let Some(rule) = script
        .unique
        .iter()
        .find(|rule| violates(&error, rule.index))
    {
        return Failure::Fail(DomainError::conflict(
            Some(rule.field),
            rule.message.clone(),
        ));
    }
    Failure::Fail(storage(StoreError::Query {
        operation: script.operation,
        source: error,
    }))
}

/// Whether the error is SurrealDB's unique-index violation of `index`. The SDK reports it as an
/// internal error with a message only ("Database index `label_name` already contains …").
fn violates(error: &surrealdb::Error, index: &str) -> bool {
    let message = error.message();
    message.contains("already contains") && message.contains(&format!("`{index}`"))
}

/// Turns a `THROW 'vp|…'` of a script into the domain error it stands for.
fn thrown(message: &str) -> Option<DomainError> {
    let code = &message[message.find("vp|")? + 3..];
    let parts: Vec<&str> = code.split('|').collect();
    let error = match parts.as_slice() {
        ["not_found", entity, id] => DomainError::not_found(entity_named(entity)?, id),
        ["label_in_use", label, prompts] => DomainError::conflict(
            None,
            format!("label {label} is used by {prompts} prompt(s); change or delete them first"),
        ),
        ["frame_in_use", frame, prompt] => DomainError::conflict(
            Some("frame_id"),
            format!("frame {frame} is already used by prompt {prompt}"),
        ),
        _ => return None,
    };
    Some(error)
}

fn entity_named(name: &str) -> Option<Entity> {
    Some(match name {
        "project" => Entity::Project,
        "label" => Entity::Label,
        "frame" => Entity::Frame,
        "prompt" => Entity::Prompt,
        "source" => Entity::Source,
        "sink" => Entity::Sink,
        "model" => Entity::ModelConfig,
        _ => return None,
    })
}

/// Logs the failure with its whole cause chain (the client only ever sees "storage failure") and
/// wraps it for the domain.
pub(crate) fn storage(error: StoreError) -> DomainError {
    let mut chain = Vec::new();
    let mut cause = std::error::Error::source(&error);
    while let Some(c) = cause {
        chain.push(c.to_string());
        cause = c.source();
    }
    tracing::error!(message = "Store operation failed.", error = %error, causes = ?chain);
    DomainError::storage(error)
}

/// A random delay in `[0, FIRST_BACKOFF * 2^(attempt-1)]`, capped: random so that writers that
/// conflicted once do not collide again in lockstep.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1 << attempt.min(16).saturating_sub(1))
        .min(MAX_BACKOFF);
    // A v4 UUID is 122 random bits; no need for a separate RNG dependency for jitter.
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let micros = ceiling.as_micros() as u64;
    Duration::from_micros(random % (micros + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thrown_codes_become_domain_errors() {
        let err = thrown("An error occurred: vp|not_found|label|abc").unwrap();
        assert!(
            matches!(err, DomainError::NotFound { entity: Entity::Label, ref id } if id == "abc")
        );
        let err = thrown("vp|frame_in_use|f1|p1").unwrap();
        assert!(matches!(err, DomainError::Conflict { field: Some(ref f), .. } if f == "frame_id"));
        assert!(thrown("something else").is_none());
        assert!(thrown("vp|not_found|planet|1").is_none());
    }

    #[test]
    fn backoff_grows_but_stays_capped() {
        for attempt in 1..40 {
            assert!(backoff(attempt) <= MAX_BACKOFF);
        }
    }
}
