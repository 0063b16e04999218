//! Pieces every resource shares: pagination in and out, and the `Location` of created resources.

use poem_openapi::Object;
use visprompt_domain::{Page, Paged};

use crate::api::error::ApiError;

/// Where a page sits in the whole list.
#[derive(Debug, Clone, Object)]
pub struct Pagination {
    /// Items in this page.
    pub count: u64,
    /// Items in the whole list.
    pub total: u64,
    pub offset: u64,
    pub limit: u32,
}

impl Pagination {
    pub fn of<T>(paged: &Paged<T>) -> Self {
        Self {
            count: paged.items.len() as u64,
            total: paged.total,
            offset: paged.page.offset(),
            limit: paged.page.limit(),
        }
    }
}

/// Builds the domain page from the query parameters (the schema already bounds them).
pub fn page(offset: Option<u64>, limit: Option<u32>) -> Result<Page, ApiError> {
    Page::new(offset.unwrap_or(0), limit.unwrap_or(Page::DEFAULT_LIMIT)).map_err(ApiError::from)
}

/// The path of a resource for `Location` headers; absolute, under `/api/v1`.
pub fn location(parts: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::from("/api/v1");
    for p in parts {
        out.push('/');
        out.push_str(&p.to_string());
    }
    out
}
