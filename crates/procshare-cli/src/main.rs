//! The `procshare` command: the book's examples, benchmarks, and shared-memory housekeeping.

fn main() {
    procshare::init();
}
