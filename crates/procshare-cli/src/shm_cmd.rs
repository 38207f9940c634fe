//! `procshare shm ls | clean [--dry-run]`: the named segments and named queues procshare
//! created, and removal of those whose users are all dead.

use clap::Subcommand;

/// `procshare shm ...`
#[derive(Subcommand)]
pub enum ShmCommand {
    /// List every named segment and named queue procshare created: name, kind, size, creator
    /// pid, live users, age.
    Ls,
    /// Remove the segments and queues whose users are all dead (persistent ones are kept).
    Clean {
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

fn age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// Runs one `shm` subcommand.
pub fn run(cmd: ShmCommand) -> procshare::Result<()> {
    match cmd {
        ShmCommand::Ls => {
            let segs = procshare::shm::list_segments()?;
            if segs.is_empty() {
                println!("no procshare segments");
                return Ok(());
            }
            println!(
                "{:<32} {:<5} {:>12} {:>8} {:>6} {:>8}  NOTE",
                "NAME", "KIND", "SIZE", "CREATOR", "USERS", "AGE"
            );
            for s in segs {
                let note = match (s.exists, s.persistent, s.alive_users) {
                    (false, _, _) => "gone (stale entry)",
                    (true, true, _) => "persistent",
                    (true, false, 0) => "no live users: `procshare shm clean` removes it",
                    _ => "",
                };
                // A queue's size is its address space (sparse), not memory in use.
                let (kind, size) = if s.queue {
                    ("queue", "sparse".to_string())
                } else {
                    ("shm", s.size.to_string())
                };
                println!(
                    "{:<32} {kind:<5} {size:>12} {:>8} {:>6} {:>8}  {note}",
                    s.name,
                    s.creator_pid,
                    s.alive_users,
                    age(s.age)
                );
            }
        }
        ShmCommand::Clean { dry_run } => {
            let removed = procshare::shm::clean(dry_run)?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for name in &removed {
                println!("{verb} {name}");
            }
            println!("{verb} {} segment(s)", removed.len());
        }
    }
    Ok(())
}
