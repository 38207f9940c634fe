//! Locks and other synchronisation between processes (issue 3).
