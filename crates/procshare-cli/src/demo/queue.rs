//! Not built yet.

pub fn run() -> procshare::Result<()> {
    Ok(())
}
