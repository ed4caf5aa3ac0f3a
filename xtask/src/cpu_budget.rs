//! CPU budgets for servers the benchmark starts: a Linux control group per server with a CPU
//! quota (cgroup v2 `cpu.max`, or cgroup v1 `cpu.cfs_quota_us`), so that on one machine each
//! server has a share of the CPUs of its own, as on a deployment where each runs on a machine of
//! its own. Needs root (or a delegated cgroup tree); without it, [`CpuBudget::new`] says what is
//! missing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The scheduler's period for the quota, microseconds.
const PERIOD_US: u64 = 100_000;

/// A control group with a CPU quota, removed on drop (its processes moved back to the root group).
pub struct CpuBudget {
    dir: PathBuf,
    root: PathBuf,
}

/// Where the `cpu` controller is mounted: `(root, v2)`.
fn cpu_root() -> Option<(PathBuf, bool)> {
    let v2 = Path::new("/sys/fs/cgroup");
    if std::fs::read_to_string(v2.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|w| w == "cpu")) {
        return Some((v2.to_path_buf(), true));
    }
    let v1 = v2.join("cpu");
    v1.join("cpu.cfs_quota_us").exists().then_some((v1, false))
}

impl CpuBudget {
    /// A new group `name` allowed `cores` CPUs' worth of time (0.5: half of one CPU).
    pub fn new(name: &str, cores: f64) -> Result<CpuBudget> {
        if !(cores > 0.0 && cores.is_finite()) {
            bail!("a CPU budget must be a positive number of cores, not {cores}");
        }
        let Some((root, v2)) = cpu_root() else {
            bail!(
                "no cgroup `cpu` controller under /sys/fs/cgroup (cgroup v2 with `cpu` enabled, or v1's cpu hierarchy)"
            )
        };
        let dir = root.join(name);
        std::fs::create_dir(&dir)
            .with_context(|| format!("cannot create the control group {} (servers apart need root)", dir.display()))?;
        let budget = CpuBudget { dir, root };
        let quota = (cores * PERIOD_US as f64).round() as u64;
        let (file, value) =
            if v2 { ("cpu.max", format!("{quota} {PERIOD_US}")) } else { ("cpu.cfs_quota_us", quota.to_string()) };
        if !v2 {
            write(&budget.dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
        }
        write(&budget.dir.join(file), &value)?;
        Ok(budget)
    }

    /// Whether groups can be made here (a group created and removed at once): checked before a
    /// run that needs them starts, so that it does not fail minutes later.
    pub fn check() -> Result<()> {
        CpuBudget::new(&format!("tapesched_bench_check_{}", std::process::id()), 1.0).map(drop)
    }

    /// Moves the processes `pids` (each with all its threads) into the group; the children they
    /// start later are in it too.
    pub fn add(&self, pids: &[u32]) -> Result<()> {
        for pid in pids {
            write(&self.dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// `(periods, throttled)`: how many scheduler periods the group's processes ran in, and in
    /// how many of them they used their whole quota and had to wait (`cpu.stat`, v1 and v2).
    pub fn periods(&self) -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field =
            |name: &str| stat.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<u64>().ok());
        Some((field("nr_periods")?, field("nr_throttled")?))
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("cannot write {value:?} to {}", path.display()))
}

impl Drop for CpuBudget {
    fn drop(&mut self) {
        // A group can only be removed once empty: what still runs in it goes back to the root
        // group (again if a process started meanwhile).
        for _ in 0..10 {
            if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
                for pid in procs.lines() {
                    let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
                }
            }
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
        }
        eprintln!("note: the control group {} could not be removed (rmdir it once empty)", self.dir.display());
    }
}
