//! Queues between threads — Python's `queue` module and `collections.deque` (issue 6).
