//! A job log as the dashboard shows it, from its file or from the journal: read by byte
//! ranges, never whole (a page shows a
//! window, the tail first, and the follow stream what was appended after an offset), and
//! rendered as HTML.

mod read;
mod render;
mod source;

pub use read::{end_of_lines, start_of_last_lines};
pub use render::render;
pub use source::LogSource;

/// Bytes of log a page shows at most: the tail first, earlier windows on request.
pub const WINDOW: u64 = 256 * 1024;

/// How much of a log one page or follow event renders at most: a log of empty lines is
/// about 75 bytes of markup per byte, so a window is capped in lines and in rendered bytes,
/// not only in bytes read.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub lines: usize,
    /// Bytes of HTML; the line that crosses it is the last one.
    pub bytes: usize,
}
