//! Every crash table in the sources is backed by code and by a test: each row names the
//! `crash_point!`s at its step boundary, each of those names is a `crash_point!` in the code,
//! and `tests/crash_points.rs` arms each one (kills a child there and checks what the row says).
//! Also the other way round: a `crash_point!` that no table row names is a step nobody wrote
//! down. Runs without the `crash-points` feature (it reads sources only).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files whose crash tables another engineer is rewriting: their rows are not yet required to
/// name points. Once such a file has a table with a `point` column it is checked like any other.
const PENDING: &[&str] = &["pipe/"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// One logical row of a crash table: its first cell and the point names of its last cell
/// (continuation lines, whose first cell is empty, belong to the row above).
#[derive(Debug)]
struct Row {
    what: String,
    points: Vec<String>,
    /// The "repaired by" cell says the kernel does it.
    by_kernel: bool,
}

#[derive(Debug)]
struct Table {
    file: String,
    line: usize,
    /// `None`: prose, or a table without a `point` column.
    rows: Option<Vec<Row>>,
}

/// The text of a doc comment line (`//!` or `///`), if it is one.
fn doc_text(line: &str) -> Option<&str> {
    let t = line.trim_start();
    t.strip_prefix("//!").or_else(|| t.strip_prefix("///")).map(str::trim)
}

/// Splits a markdown table line into cells; `\|` is a literal bar inside a cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The backticked names in a cell that look like point names (`module.step`).
fn point_names(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter(|n| {
            n.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && n.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            })
        })
        .map(str::to_owned)
        .collect()
}

fn tables_in(file: &str, text: &str) -> Vec<Table> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(t) = doc_text(lines[i]) else {
            i += 1;
            continue;
        };
        if !t.contains("Crash table") {
            i += 1;
            continue;
        }
        let start = i;
        // The table is the first run of `|` lines in the doc comment after the heading (prose
        // may come between), ended by the first non-table line after it.
        let mut j = i + 1;
        let mut table: Vec<&str> = Vec::new();
        while j < lines.len() {
            let Some(d) = doc_text(lines[j]) else { break };
            if d.starts_with('|') {
                table.push(d);
            } else if !table.is_empty() || d.contains("Crash table") {
                break;
            }
            j += 1;
        }
        let rows = (table.len() >= 2).then(|| {
            let header = cells(table[0]);
            (header.last().map(String::as_str) == Some("point")).then(|| {
                let mut rows: Vec<Row> = Vec::new();
                for l in &table[2..] {
                    let c = cells(l);
                    let names = point_names(c.last().map(String::as_str).unwrap_or(""));
                    let by_kernel = c.len() >= 2 && c[c.len() - 2].trim() == "the kernel";
                    match rows.last_mut() {
                        Some(r) if c[0].is_empty() => r.points.extend(names),
                        _ => rows.push(Row { what: c[0].clone(), points: names, by_kernel }),
                    }
                }
                rows
            })
        });
        out.push(Table { file: file.to_owned(), line: start + 1, rows: rows.flatten() });
        i = j.max(i + 1);
    }
    out
}

struct Sources {
    tables: Vec<Table>,
    /// Point name -> the files with a `crash_point!("name")`.
    placed: BTreeMap<String, BTreeSet<String>>,
}

fn sources() -> Sources {
    let mut files = Vec::new();
    rs_files(&src_dir(), &mut files);
    files.sort();
    let mut tables = Vec::new();
    let mut placed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src_dir()).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        tables.extend(tables_in(&rel, &text));
        for piece in text.split("crash_point!(\"").skip(1) {
            if rel == "crash.rs" {
                continue; // the macro's own docs
            }
            if let Some((name, _)) = piece.split_once('"') {
                placed.entry(name.to_owned()).or_default().insert(rel.clone());
            }
        }
    }
    Sources { tables, placed }
}

fn pending(file: &str) -> bool {
    PENDING.iter().any(|p| file.starts_with(p))
}

#[test]
fn the_parser_reads_a_table_with_continuations_and_escaped_bars() {
    let text = "//! Crash table (what):\n\
                //! | killed ... | leaves | point |\n\
                //! |---|---|---|\n\
                //! | step a | `W\\|T` | `x.a`, |\n\
                //! |        | more   | `x.b` |\n\
                //! | step c | none   |       |\n\
                //!\n\
                //! | not | this | one |\n";
    let t = tables_in("f.rs", text);
    assert_eq!(t.len(), 1);
    let rows = t[0].rows.as_ref().expect("a table with a point column");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].what, "step a");
    assert_eq!(rows[0].points, ["x.a", "x.b"]);
    assert!(rows[1].points.is_empty());
    let prose = tables_in("g.rs", "//! Crash table: nothing to see.\nfn f() {}\n");
    assert!(prose[0].rows.is_none());
}

#[test]
fn every_crash_table_row_has_a_placed_point_that_a_test_arms() {
    let s = sources();
    // The pipe's rows are armed in their own file, next to the pipe tests.
    let tests =
        ["tests/crash_points.rs", "tests/crash_points_pipe.rs", "tests/crash_points_pool.rs"]
            .iter()
            .map(|f| {
                std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).unwrap()
            })
            .collect::<Vec<_>>()
            .join("\n");
    let mut problems = Vec::new();
    let mut named = BTreeSet::new();
    let mut rows = 0;
    for t in &s.tables {
        let Some(table_rows) = &t.rows else {
            if pending(&t.file) {
                eprintln!(
                    "NOTE: {}:{}: crash table without a point column, pending (src/pipe/ is \
                     being rewritten; its tables get points after that merge)",
                    t.file, t.line
                );
            } else {
                problems.push(format!(
                    "{}:{}: crash table is prose or has no `point` column",
                    t.file, t.line
                ));
            }
            continue;
        };
        for r in table_rows {
            rows += 1;
            // A row the kernel alone repairs has no step of ours to stop at (its promise is
            // tested by killing the process outright, e.g. in tests/pipe_ring.rs).
            if r.points.is_empty() && !r.by_kernel {
                problems.push(format!("{}:{}: row {:?} names no point", t.file, t.line, r.what));
            }
            for p in &r.points {
                named.insert(p.clone());
                if !s.placed.contains_key(p) {
                    problems.push(format!(
                        "{}:{}: row {:?}: no crash_point!({p:?}) in the sources",
                        t.file, t.line, r.what
                    ));
                }
                // Armed by `arm("name", n)` or by an environment spec `"name:n"`.
                if !tests.contains(&format!("\"{p}\"")) && !tests.contains(&format!("\"{p}:")) {
                    problems.push(format!(
                        "{}:{}: row {:?}: no test in tests/crash_points.rs arms {p:?}",
                        t.file, t.line, r.what
                    ));
                }
            }
        }
    }
    for (p, files) in &s.placed {
        if !named.contains(p) && !files.iter().all(|f| pending(f)) {
            problems.push(format!("crash_point!({p:?}) in {files:?} is named by no crash table"));
        }
    }
    assert!(rows > 40, "only {rows} crash-table rows found: is the parser broken?");
    assert!(problems.is_empty(), "crash tables out of step:\n  {}", problems.join("\n  "));
}
