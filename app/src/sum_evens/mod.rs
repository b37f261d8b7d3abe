//! The sum-evens task: the exact sum of the even integers in an uploaded text file of any size.
//!
//! - [`parse`]: the streaming parser; [`oracle`]: the obvious computation it is checked against;
//!   `long`: numbers of more than 38 digits, added in decimal in linear time.
//! - `range`: summing one byte range of a file, so a file is cut into chunks that are
//!   summed independently (in parallel, and in any order) and merged.
//! - `held`: the latest blocks of an arriving upload, kept in memory for its sum.
//! - [`scheduler`]: the chunks of every running job, taken round robin across clients, so a
//!   small job never waits behind another client's big one.

pub(crate) mod columns;
pub(crate) mod held;
pub(crate) mod long;
pub mod oracle;
pub mod parse;
pub(crate) mod range;
pub mod scheduler;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The result of a finished sum-evens task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SumEvensResult {
    /// The sum of the even numbers, exact, in decimal.
    pub sum: String,
    /// Numbers in the file.
    pub numbers: u64,
    /// Even numbers in the file.
    pub evens: u64,
    /// The file's size.
    pub bytes: u64,
}
