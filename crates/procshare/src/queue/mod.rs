//! Queues between processes (issue 4).
