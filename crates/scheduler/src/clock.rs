//! Injected clocks: every "now" in tapesched comes from a [`Clock`].
//!
//! Scenario runs and tests use [`ManualClock`]; a production process started from the command line
//! uses [`SystemClock`], which reads the wall clock. The only other reader of the wall clock is
//! [`ScaledClock`], for sped-up end-to-end runs whose processes share one scaled time (a start, a
//! wall origin and a factor, [`ClockSpec`]).

use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch, the time unit of the whole scheduler.
pub type Timestamp = i64;

/// A source of "now".
pub trait Clock: Send + Sync {
    /// The current time in seconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(AtomicI64::new(t))
    }
    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// The wall clock, for production processes only.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as Timestamp)
            .unwrap_or(0)
    }
}

/// Where a [`ScaledClock`] reads the wall clock: milliseconds since the Unix epoch.
pub trait WallSource: Send + Sync {
    /// The wall clock's now, in milliseconds since the Unix epoch.
    fn wall_ms(&self) -> i64;
}

/// The system's wall clock as a [`WallSource`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemWall;

impl WallSource for SystemWall {
    fn wall_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// A wall clock that only moves when told to, for tests of [`ScaledClock`].
#[derive(Debug, Default)]
pub struct ManualWall(AtomicI64);

impl ManualWall {
    /// A wall clock standing at `ms` milliseconds since the epoch.
    pub fn new(ms: i64) -> Self {
        ManualWall(AtomicI64::new(ms))
    }
    /// Moves it to `ms`.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl WallSource for ManualWall {
    fn wall_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The three numbers that define a [`ScaledClock`]; separate processes given the same three agree
/// on "now". Written `START,ORIGIN,FACTOR` on command lines ([`ClockSpec::parse`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSpec {
    /// The simulated time at the origin, seconds since the Unix epoch.
    pub start: Timestamp,
    /// The wall-clock instant at which simulated time is `start`, milliseconds since the epoch.
    pub origin_ms: i64,
    /// Simulated seconds per wall second (finite, > 0).
    pub factor: f64,
}

impl ClockSpec {
    /// Checks the numbers: a finite factor above 0 and a start within the range of milliseconds.
    pub fn new(start: Timestamp, origin_ms: i64, factor: f64) -> Result<ClockSpec, String> {
        if !factor.is_finite() || factor <= 0.0 {
            return Err(format!("clock factor {factor} must be a finite number above 0"));
        }
        if start.checked_mul(1000).is_none() {
            return Err(format!("clock start {start} is out of range (seconds since the epoch)"));
        }
        Ok(ClockSpec { start, origin_ms, factor })
    }

    /// Parses `START,ORIGIN,FACTOR`: simulated start in seconds since the epoch, wall origin in
    /// milliseconds since the epoch, factor (e.g. `1767225600,1767225600000,720`); the error
    /// names the part that is wrong.
    pub fn parse(text: &str) -> Result<ClockSpec, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let [start, origin, factor] = parts[..] else {
            return Err(format!(
                "bad clock {text:?}: expected START,ORIGIN,FACTOR (simulated start in seconds since the epoch, \
                 wall origin in milliseconds since the epoch, factor)"
            ));
        };
        let start: Timestamp =
            start.parse().map_err(|_| format!("bad clock start {start:?}: expected whole seconds since the epoch"))?;
        let origin: i64 = origin
            .parse()
            .map_err(|_| format!("bad clock origin {origin:?}: expected whole milliseconds since the epoch"))?;
        let factor: f64 = factor.parse().map_err(|_| format!("bad clock factor {factor:?}: expected a number"))?;
        ClockSpec::new(start, origin, factor)
    }
}

impl std::fmt::Display for ClockSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{}", self.start, self.origin_ms, self.factor)
    }
}

/// A sped-up wall clock for the processes of an end-to-end run: simulated now = start +
/// (wall now - origin) x factor, never earlier than start (before the origin it stands at start).
///
/// This is the second place, after [`SystemClock`], that reads the wall clock, and it is for
/// sped-up runs only: producers, tape daemons and maintenance loops started as separate processes
/// with the same [`ClockSpec`] agree on "now" to within their wall clocks' agreement.
pub struct ScaledClock {
    spec: ClockSpec,
    wall: std::sync::Arc<dyn WallSource>,
}

impl std::fmt::Debug for ScaledClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaledClock").field("spec", &self.spec).finish()
    }
}

impl ScaledClock {
    /// A scaled clock on the system's wall clock.
    pub fn new(spec: ClockSpec) -> Self {
        Self::with_wall(spec, std::sync::Arc::new(SystemWall))
    }

    /// A scaled clock on `wall` (tests inject a [`ManualWall`]).
    pub fn with_wall(spec: ClockSpec, wall: std::sync::Arc<dyn WallSource>) -> Self {
        ScaledClock { spec, wall }
    }

    /// Its three numbers.
    pub fn spec(&self) -> ClockSpec {
        self.spec
    }

    /// The simulated now in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        let elapsed = self.wall.wall_ms().saturating_sub(self.spec.origin_ms).max(0);
        let scaled = (elapsed as f64 * self.spec.factor).min(i64::MAX as f64) as i64;
        self.spec.start.saturating_mul(1000).saturating_add(scaled)
    }

    /// The wall instant (ms since the epoch) at which simulated time reaches `sim_ms` (the origin
    /// for any time at or before start).
    pub fn wall_at_ms(&self, sim_ms: i64) -> i64 {
        let ahead = sim_ms.saturating_sub(self.spec.start.saturating_mul(1000)).max(0);
        let wall = (ahead as f64 / self.spec.factor).ceil().min(i64::MAX as f64) as i64;
        self.spec.origin_ms.saturating_add(wall)
    }

    /// How long to wait on the wall clock until simulated time reaches `sim_ms` (zero if it has).
    pub fn wall_until(&self, sim_ms: i64) -> std::time::Duration {
        let left = self.wall_at_ms(sim_ms).saturating_sub(self.wall.wall_ms());
        std::time::Duration::from_millis(left.max(0) as u64)
    }

    /// A simulated duration as wall time (at least 1 ms, so that a loop always waits).
    pub fn wall_duration(&self, sim: std::time::Duration) -> std::time::Duration {
        let ms = (sim.as_secs_f64() * 1000.0 / self.spec.factor).ceil();
        std::time::Duration::from_millis((ms.min(u64::MAX as f64) as u64).max(1))
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        self.now_ms().div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn scaled_time_is_start_plus_elapsed_wall_times_factor() {
        let wall = Arc::new(ManualWall::new(5_000_000));
        let spec = ClockSpec::new(1_000, 5_000_000, 720.0).unwrap();
        let c = ScaledClock::with_wall(spec, wall.clone());
        assert_eq!((c.now(), c.now_ms()), (1_000, 1_000_000));
        // 5 s of wall time is one simulated hour.
        wall.set(5_005_000);
        assert_eq!(c.now(), 1_000 + 3_600);
        wall.set(5_000_001);
        assert_eq!(c.now_ms(), 1_000_720);
        // Before the origin the clock stands at start.
        wall.set(4_000_000);
        assert_eq!(c.now_ms(), 1_000_000);
    }

    #[test]
    fn two_clocks_with_the_same_spec_agree() {
        let wall = Arc::new(ManualWall::new(0));
        let spec = ClockSpec::parse("1767225600,1767225600000,60").unwrap();
        let (a, b) = (ScaledClock::with_wall(spec, wall.clone()), ScaledClock::with_wall(spec, wall.clone()));
        for t in [1_767_225_600_000, 1_767_225_601_234, 1_767_229_000_000] {
            wall.set(t);
            assert_eq!(a.now_ms(), b.now_ms());
        }
        assert_eq!(a.now(), 1_767_225_600 + 3_400 * 60);
    }

    #[test]
    fn wall_instants_invert_the_scaling() {
        let wall = Arc::new(ManualWall::new(10_000));
        let c = ScaledClock::with_wall(ClockSpec::new(100, 10_000, 7.0).unwrap(), wall.clone());
        // 700 simulated ms after start is 100 wall ms after the origin; 701 is 101 (rounded up).
        assert_eq!(c.wall_at_ms(100_700), 10_100);
        assert_eq!(c.wall_at_ms(100_701), 10_101);
        assert_eq!(c.wall_at_ms(0), 10_000);
        assert_eq!(c.wall_until(100_700), Duration::from_millis(100));
        wall.set(10_100);
        assert_eq!(c.wall_until(100_700), Duration::ZERO);
        assert!(c.now_ms() >= 100_700);
        wall.set(c.wall_at_ms(123_456));
        assert!(c.now_ms() >= 123_456 && c.now_ms() < 123_456 + 7);
        assert_eq!(c.wall_duration(Duration::from_secs(70)), Duration::from_millis(10_000));
        assert_eq!(c.wall_duration(Duration::ZERO), Duration::from_millis(1));
    }

    #[test]
    fn bad_specs_name_the_part() {
        assert!(ClockSpec::parse("1,2").unwrap_err().contains("START,ORIGIN,FACTOR"));
        assert!(ClockSpec::parse("x,2,3").unwrap_err().contains("clock start \"x\""));
        assert!(ClockSpec::parse("1,2.5,3").unwrap_err().contains("clock origin \"2.5\""));
        assert!(ClockSpec::parse("1,2,fast").unwrap_err().contains("clock factor \"fast\""));
        assert!(ClockSpec::parse("1,2,0").unwrap_err().contains("above 0"));
        assert!(ClockSpec::parse("1,2,-3").unwrap_err().contains("above 0"));
        assert!(ClockSpec::parse("1,2,inf").unwrap_err().contains("above 0"));
        assert!(ClockSpec::parse(&format!("{},2,3", i64::MAX)).unwrap_err().contains("out of range"));
        let s = ClockSpec::parse(" 10 , 20 , 2.5 ").unwrap();
        assert_eq!(s, ClockSpec { start: 10, origin_ms: 20, factor: 2.5 });
        assert_eq!(ClockSpec::parse(&s.to_string()).unwrap(), s);
    }
}
