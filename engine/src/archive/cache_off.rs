//! The read-through cache's types in a build without the `archive` feature. `ArchiveReads`
//! has no values here, so no store can be configured to read through an archive, and every
//! path that would use the cache is statically unreachable (no fake results: the code that
//! matches on these types proves it never runs).

use std::ops::ControlFlow;
use std::path::Path;

use crate::error::Result;
use crate::wal::{HashAlgorithm, RecordRef, Seq};

/// Reading dropped epochs through an archive: needs the `archive` cargo feature. Without it
/// this type has no values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReads {
    never: Never,
}

/// No values: what makes the two types above impossible to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Never {}

/// What opening the cache does with directories of interrupted fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftovers {
    /// Remove them.
    Remove,
    /// Leave them.
    Ignore,
}

/// The cache of one store: no values without the `archive` feature.
pub(crate) struct ArchiveCache {
    never: Never,
}

impl ArchiveCache {
    // The same signature as the archive build's, which keeps the settings.
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) fn open(
        _data_dir: &Path,
        _alg: HashAlgorithm,
        _store_id: String,
        settings: ArchiveReads,
        _leftovers: Leftovers,
    ) -> Result<ArchiveCache> {
        match settings.never {}
    }

    pub(crate) fn visit<T>(&self, _seq: Seq, _visit: impl FnOnce(RecordRef<'_>) -> T) -> Result<T> {
        match self.never {}
    }

    pub(crate) fn scan(
        &self,
        _from: Seq,
        _to: Seq,
        _visit: &mut impl FnMut(RecordRef<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<(Seq, bool)> {
        match self.never {}
    }
}
