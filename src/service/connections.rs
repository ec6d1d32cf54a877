//! AWS connections (CCKM's connection manager): create (the static keys go to Secrets Manager first),
//! read by id or name, patch, delete (refused while a KMS resource uses the connection), and how a KMS
//! resource reaches AWS through its connection.

use crate::app::App;
use crate::domain::AppError;
use crate::domain::connection::{AwsConnection, ConnectionBody, ConnectionCheck, StaticKeys};
use crate::domain::kms::{ConnectionLink, KmsResource};
use crate::domain::list::parse_json_body;
use crate::domain::time::now;
use crate::ports::Connection;
use uuid::Uuid;

pub async fn create(app: &App, body: &[u8]) -> Result<AwsConnection, AppError> {
    let body: ConnectionBody = parse_json_body(body)?;
    let new = body.validate_new(Uuid::new_v4(), now())?;
    let mut connection = new.connection;
    if app
        .connections
        .find_by_name(&connection.name)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "an AWS connection named '{}' exists already",
            connection.name
        )));
    }
    if let Some(keys) = &new.keys {
        connection.secret_id = Some(app.secrets.create(connection.id, keys).await?);
    }
    if let Err(err) = app.connections.insert(&connection).await {
        // Taken meanwhile: the secret made for it goes too.
        if let Some(secret) = &connection.secret_id
            && let Err(cleanup) = app.secrets.delete(secret).await
        {
            tracing::error!(secret, error = %cleanup, "could not delete the secret of a refused connection");
        }
        return Err(err);
    }
    Ok(connection)
}

/// A connection by id or name.
pub async fn get(app: &App, id_or_name: &str) -> Result<AwsConnection, AppError> {
    let by_id = match Uuid::parse_str(id_or_name) {
        Ok(id) => app.connections.get(id).await?,
        Err(_) => None,
    };
    let found = match by_id {
        Some(connection) => Some(connection),
        None => app.connections.find_by_name(id_or_name).await?,
    };
    found.ok_or_else(|| AppError::NotFound(format!("AWS connection '{id_or_name}' not found")))
}

pub async fn patch(app: &App, id_or_name: &str, body: &[u8]) -> Result<AwsConnection, AppError> {
    let body: ConnectionBody = parse_json_body(body)?;
    let current = get(app, id_or_name).await?;
    let (mut next, keys) = body.apply(&current, now())?;
    if let Some(keys) = &keys {
        match &current.secret_id {
            Some(secret) => app.secrets.replace(secret, keys).await?,
            None => next.secret_id = Some(app.secrets.create(next.id, keys).await?),
        }
    }
    app.connections.replace(&next).await?;
    Ok(next)
}

pub async fn delete(app: &App, id_or_name: &str) -> Result<(), AppError> {
    let connection = get(app, id_or_name).await?;
    let users: Vec<String> = app
        .kms
        .list()
        .await?
        .into_iter()
        .filter(|kms| {
            kms.connection
                .as_ref()
                .is_some_and(|c| c.id == connection.id)
        })
        .map(|kms| kms.name)
        .collect();
    if !users.is_empty() {
        return Err(AppError::Conflict(format!(
            "AWS connection '{}' is used by KMS resource(s) {}",
            connection.name,
            users.join(", ")
        )));
    }
    app.connections.remove(&connection).await?;
    if let Some(secret) = &connection.secret_id {
        app.secrets.delete(secret).await?;
    }
    Ok(())
}

/// Tests credentials a client has not saved (`POST .../connection-test`): the account they reach, or why
/// AWS refused them. Nothing is stored; the secret key is used for the one call and dropped.
pub async fn test_unsaved(app: &App, body: &[u8]) -> Result<ConnectionCheck, AppError> {
    let mut body: ConnectionBody = parse_json_body(body)?;
    // The test needs no name; validation asks for one.
    body.name = Some("connection-test".into());
    let new = body.validate_new(Uuid::nil(), now())?;
    Ok(check(app, new.keys.as_ref(), &new.connection).await)
}

/// Tests a saved connection (`POST .../connections/{id}/test`) and keeps what it found on it.
pub async fn test(app: &App, id_or_name: &str) -> Result<ConnectionCheck, AppError> {
    let mut connection = get(app, id_or_name).await?;
    let keys = match &connection.secret_id {
        Some(secret) => Some(app.secrets.read(secret).await?),
        None => None,
    };
    let found = check(app, keys.as_ref(), &connection).await;
    connection.last_check = Some(found.clone());
    app.connections.replace(&connection).await?;
    Ok(found)
}

async fn check(
    app: &App,
    keys: Option<&StaticKeys>,
    connection: &AwsConnection,
) -> ConnectionCheck {
    let role = connection
        .assume_role_arn
        .as_deref()
        .map(|arn| (arn, connection.assume_role_external_id.as_deref()));
    let (ok, error) = match app.identity.account_of(keys, role).await {
        Ok(_) => (true, String::new()),
        Err(why) => (false, why),
    };
    ConnectionCheck {
        ok,
        error,
        at: now(),
    }
}

/// The link a KMS resource keeps to the connection `id_or_name`; an empty name (Go's unset string) is none.
pub async fn link(app: &App, id_or_name: Option<&str>) -> Result<Option<ConnectionLink>, AppError> {
    let Some(wanted) = id_or_name.filter(|c| !c.trim().is_empty()) else {
        return Ok(None);
    };
    let connection = get(app, wanted).await.map_err(|err| match err {
        AppError::NotFound(text) => AppError::InvalidParam(format!("connection: {text}")),
        other => other,
    })?;
    Ok(Some(ConnectionLink {
        id: connection.id,
        name: connection.name,
    }))
}

/// How `kms` reaches AWS: through its connection when it names one.
pub async fn reach(app: &App, kms: &KmsResource) -> Result<Connection, AppError> {
    let via = match &kms.connection {
        Some(link) => Some(app.connections.get(link.id).await?.ok_or_else(|| {
            AppError::Conflict(format!(
                "the AWS connection '{}' of KMS resource '{}' is gone",
                link.name, kms.name
            ))
        })?),
        None => None,
    };
    Ok(Connection::of(kms, via.as_ref()))
}
