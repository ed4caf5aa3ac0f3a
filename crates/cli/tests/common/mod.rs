//! What the process tests of the migration bridge share (`bridge_migration.rs`,
//! `bridge_faults.rs`): the lines their `tapesched worker` processes print, collected by process
//! name with a signal for each new one, and the ids read from those lines.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The lines every process printed, by process name, and a signal for each new one.
pub struct Outputs {
    lines: Mutex<BTreeMap<String, Vec<String>>>,
    more: Condvar,
    limit: Duration,
}

impl Outputs {
    /// No lines yet; a wait gives up after `limit`.
    pub fn new(limit: Duration) -> Arc<Outputs> {
        Arc::new(Outputs { lines: Mutex::default(), more: Condvar::new(), limit })
    }

    /// Collects the lines of `stdout` under `name`, on a thread of their own.
    pub fn collect(self: &Arc<Self>, name: &str, stdout: ChildStdout) {
        let (outputs, key) = (self.clone(), name.to_string());
        outputs.lines.lock().unwrap().insert(key.clone(), Vec::new());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                outputs.lines.lock().unwrap().get_mut(&key).expect("registered").push(line);
                outputs.more.notify_all();
            }
        });
    }

    /// Waits until `done` holds of the lines (each new line re-checks it); panics naming `what`
    /// after the limit.
    pub fn wait(&self, what: &str, done: impl Fn(&BTreeMap<String, Vec<String>>) -> bool) {
        self.wait_or(what, done, |_| String::new())
    }

    /// [`Outputs::wait`], saying `more` of the lines on a timeout.
    pub fn wait_or(
        &self,
        what: &str,
        done: impl Fn(&BTreeMap<String, Vec<String>>) -> bool,
        more: impl Fn(&BTreeMap<String, Vec<String>>) -> String,
    ) {
        let deadline = Instant::now() + self.limit;
        let mut lines = self.lines.lock().unwrap();
        while !done(&lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let (last, more) = (tails(&lines), more(&lines));
                drop(lines);
                panic!("timed out waiting for {what} {more}; last lines: {last:#?}");
            }
            lines = self.more.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// The lines of process `name` so far.
    pub fn of(&self, name: &str) -> Vec<String> {
        self.lines.lock().unwrap().get(name).cloned().unwrap_or_default()
    }

    /// Every process's lines so far.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<String>> {
        self.lines.lock().unwrap().clone()
    }
}

/// The last five lines of each process.
pub fn tails(lines: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    lines.iter().map(|(k, v)| (k.clone(), v.iter().rev().take(5).rev().cloned().collect())).collect()
}

/// Ids on the lines starting with `what ` (`queued 1,2`, `completed 7 1,2`, `reported archive:1:success`).
pub fn ids_after(lines: &[String], what: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for l in lines {
        let Some(rest) = l.strip_prefix(what).and_then(|r| r.strip_prefix(' ')) else { continue };
        let list = if what == "completed" { rest.split_once(' ').map_or("", |x| x.1) } else { rest };
        for item in list.split(',').filter(|s| !s.is_empty()) {
            let id = if what == "reported" { item.split(':').nth(1).unwrap_or("") } else { item };
            out.push(id.parse().unwrap_or_else(|_| panic!("bad id in {l:?}")));
        }
    }
    out
}

/// How many times each id appears.
pub fn counts(ids: impl IntoIterator<Item = u64>) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}
