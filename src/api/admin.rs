//! Tenants and their credentials: the operator's operations, shared by the admin HTTP endpoints
//! (`/v1/admin/...`, admin token) and the `upgate admin` CLI (same config and database).
//!
//! Every secret is generated here, returned once, and stored only as a hash (API keys) or as
//! needed to verify SigV4 (S3 secret access keys).

use std::sync::Arc;

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::json;
use crate::auth::principal::{Principal, hash_secret};
use crate::error::{Error, Result};
use crate::http::Body;
use crate::metadata::control::{AccessKeyRecord, ApiKeyRecord, ControlStore, Tenant};
use crate::state::AppState;

/// What creating a tenant returns (printed as one JSON object by the CLI).
#[derive(Debug, Clone, Serialize)]
pub struct NewTenant {
    pub tenant_id: String,
    pub name: String,
    pub api_key: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A fresh API key string (`ugk_<id>_<secret>`) and its stored record.
fn new_api_key(tenant_id: &str) -> (String, ApiKeyRecord) {
    let id = crate::id::random_hex(8);
    let secret = crate::id::random_hex(32);
    let record = ApiKeyRecord {
        id: id.clone(),
        tenant_id: tenant_id.to_string(),
        secret_hash: hash_secret(&secret),
        revoked: false,
    };
    (format!("ugk_{id}_{secret}"), record)
}

/// A fresh S3 access key pair.
fn new_access_key(tenant_id: &str) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key_id: format!("UGAK{}", crate::id::random_hex(8).to_ascii_uppercase()),
        tenant_id: tenant_id.to_string(),
        secret: crate::id::random_hex(20),
        revoked: false,
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Creates a tenant with one API key and one S3 access key.
pub async fn create_tenant(control: &dyn ControlStore, name: &str) -> Result<NewTenant> {
    if !valid_name(name) {
        return Err(Error::InvalidJson(
            "Tenant names are 1-64 characters of a-z, 0-9, - and _.",
        ));
    }
    if control.tenant_by_name(name).await?.is_some() {
        return Err(Error::AlreadyExists);
    }
    let now = crate::clock::now_ms();
    let tenant = Tenant {
        id: crate::id::random_hex(8),
        name: name.to_string(),
        created_at_ms: now,
        max_bytes: None,
        max_objects: None,
    };
    control.create_tenant(&tenant).await?;
    let (api_key, record) = new_api_key(&tenant.id);
    control.insert_api_key(&record, now).await?;
    let ak = new_access_key(&tenant.id);
    control.insert_access_key(&ak, now).await?;
    Ok(NewTenant {
        tenant_id: tenant.id,
        name: tenant.name,
        api_key,
        access_key_id: ak.access_key_id,
        secret_access_key: ak.secret,
    })
}

/// Adds an API key to a tenant.
pub async fn create_api_key(control: &dyn ControlStore, tenant_id: &str) -> Result<String> {
    control.tenant(tenant_id).await?.ok_or(Error::NotFound)?;
    let (api_key, record) = new_api_key(tenant_id);
    control
        .insert_api_key(&record, crate::clock::now_ms())
        .await?;
    Ok(api_key)
}

/// Adds an S3 access key to a tenant.
pub async fn create_access_key(
    control: &dyn ControlStore,
    tenant_id: &str,
) -> Result<(String, String)> {
    control.tenant(tenant_id).await?.ok_or(Error::NotFound)?;
    let ak = new_access_key(tenant_id);
    control
        .insert_access_key(&ak, crate::clock::now_ms())
        .await?;
    Ok((ak.access_key_id, ak.secret))
}

/// `POST /v1/admin/tenants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    pub name: String,
}

/// `POST /v1/admin/tenants`.
pub async fn http_create_tenant(
    state: &Arc<AppState>,
    who: &Principal,
    req: CreateTenantRequest,
) -> Result<Response<Body>> {
    who.require_admin()?;
    let t = create_tenant(state.control.as_ref(), &req.name).await?;
    Ok(json(StatusCode::CREATED, &t))
}

/// `POST /v1/admin/tenants/{id}/api-keys`.
pub async fn http_create_api_key(
    state: &Arc<AppState>,
    who: &Principal,
    tenant: &str,
) -> Result<Response<Body>> {
    who.require_admin()?;
    let key = create_api_key(state.control.as_ref(), tenant).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "tenant_id": tenant, "api_key": key }),
    ))
}

/// `POST /v1/admin/tenants/{id}/access-keys`.
pub async fn http_create_access_key(
    state: &Arc<AppState>,
    who: &Principal,
    tenant: &str,
) -> Result<Response<Body>> {
    who.require_admin()?;
    let (id, secret) = create_access_key(state.control.as_ref(), tenant).await?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "tenant_id": tenant, "access_key_id": id, "secret_access_key": secret }),
    ))
}
