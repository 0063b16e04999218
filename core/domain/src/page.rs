//! Pagination: a validated window (`offset`, `limit`) into an ordered list, and a page of results
//! with the total count so that clients can render pagers without a second request.

use crate::error::DomainError;

/// A window into an ordered list. `limit` is 1..=[`Page::MAX_LIMIT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    offset: u64,
    limit: u32,
}

impl Page {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 1000;
    /// Offsets beyond this are refused: no store is asked to skip more rows than it could hold.
    pub const MAX_OFFSET: u64 = 1_000_000_000;

    pub fn new(offset: u64, limit: u32) -> Result<Self, DomainError> {
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(DomainError::invalid(
                "limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        if offset > Self::MAX_OFFSET {
            return Err(DomainError::invalid(
                "offset",
                format!("must be at most {}", Self::MAX_OFFSET),
            ));
        }
        Ok(Self { offset, limit })
    }

    /// Every item, for internal callers that need a whole (small) list.
    pub const fn all() -> Self {
        Self {
            offset: 0,
            limit: u32::MAX,
        }
    }

    pub const fn offset(&self) -> u64 {
        self.offset
    }

    pub const fn limit(&self) -> u32 {
        self.limit
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One page of results and the number of items in the whole list.
#[derive(Clone, Debug, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: Page,
}

impl<T> Paged<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            page: self.page,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_limit_is_refused_and_names_the_field() {
        let err = Page::new(0, 0).unwrap_err();
        assert!(matches!(err, DomainError::Invalid { ref field, .. } if field == "limit"));
    }

    #[test]
    fn a_limit_above_the_maximum_is_refused() {
        assert!(Page::new(0, Page::MAX_LIMIT + 1).is_err());
        assert!(Page::new(0, Page::MAX_LIMIT).is_ok());
    }

    #[test]
    fn a_huge_offset_is_refused() {
        assert!(Page::new(Page::MAX_OFFSET + 1, 10).is_err());
    }
}
