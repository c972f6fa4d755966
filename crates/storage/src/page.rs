//! A page of a list, shared by the lists of several modules (resources, the feed).

/// One page of rows plus the total number of rows matching.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}
