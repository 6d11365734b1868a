//! When to shed and when to restore: decisions from measured load alone (no clock, no I/O).

use sensor_common::shed_keep;

/// How much traffic is shed, from nothing to everything but the protected traffic. Each level
/// sheds what the one below it sheds and more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing is shed.
    #[default]
    Normal = 0,
    /// Name-service exchanges of non-DC clients are sampled in XDP (one in
    /// [`NAME_QUERY_SAMPLE`] kept).
    SampleNames = 1,
    /// None of them is copied, and SMB file reads and writes are shed in userspace.
    ShedLow = 2,
    /// Every activity that is not protected (Kerberos, NTLM, DRSUAPI, SVCCTL, LDAP binds,
    /// Windows events) is shed in userspace.
    ShedNormal = 3,
}

/// At [`Level::SampleNames`], one name-service frame in this many is kept.
pub const NAME_QUERY_SAMPLE: u32 = 10;

impl Level {
    pub const MAX: Self = Self::ShedNormal;

    pub const fn number(self) -> u64 {
        self as u64
    }

    const fn up(self) -> Self {
        match self {
            Self::Normal => Self::SampleNames,
            Self::SampleNames => Self::ShedLow,
            Self::ShedLow | Self::ShedNormal => Self::ShedNormal,
        }
    }

    const fn down(self) -> Self {
        match self {
            Self::Normal | Self::SampleNames => Self::Normal,
            Self::ShedLow => Self::SampleNames,
            Self::ShedNormal => Self::ShedLow,
        }
    }

    /// The `SHED` map's value for the name-query class at this level (`shed_keep`).
    pub const fn name_query_keep(self) -> u32 {
        match self {
            Self::Normal => shed_keep::ALL,
            Self::SampleNames => NAME_QUERY_SAMPLE,
            Self::ShedLow | Self::ShedNormal => shed_keep::NONE,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::SampleNames => "sampling name queries",
            Self::ShedLow => "shedding name queries and SMB file I/O",
            Self::ShedNormal => "shedding all but authentication and replication",
        }
    }
}

/// What one tick measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    /// Share of the host's CPU time that was idle since the last tick, 0 to 1.
    pub cpu_free: f64,
    /// Share of the host's memory available (`MemAvailable / MemTotal`), 0 to 1.
    pub memory_free: f64,
    /// The sensor's own resident memory, bytes.
    pub own_bytes: u64,
}

/// The limiter's settings (`[limiter]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Shed while less than this share of the host's CPU is free (MDI's rule: 0.15).
    pub min_free_cpu: f64,
    /// Shed while less than this share of the host's memory is free.
    pub min_free_memory: f64,
    /// Restore only once both are free by this much more than their minimum: a host hovering at
    /// the threshold would otherwise flap between levels.
    pub restore_margin: f64,
    /// Ticks of calm (free above minimum plus margin) before stepping one level down.
    pub restore_ticks: u32,
    /// The sensor's hard cap on its own memory, bytes: above [`OWN_PRESSURE`] of it counts as
    /// pressure.
    pub memory_cap_bytes: u64,
}

/// Share of its memory cap above which the sensor sheds to keep under it.
pub const OWN_PRESSURE: f64 = 0.9;
/// Share of its memory cap under which the sensor's own memory counts as calm.
pub const OWN_CALM: f64 = 0.75;

/// A change of level, and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub from: Level,
    pub to: Level,
    pub cause: Cause,
}

/// What moved the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Cpu,
    Memory,
    OwnMemory,
    /// Load fell and stayed low for `restore_ticks`.
    Calm,
}

impl Cause {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cpu => "host CPU",
            Self::Memory => "host memory",
            Self::OwnMemory => "the sensor's memory cap",
            Self::Calm => "load fell",
        }
    }
}

/// The limiter's state: the level, and how long load has been calm.
#[derive(Clone, Debug)]
pub struct Limiter {
    policy: Policy,
    level: Level,
    calm_ticks: u32,
}

impl Limiter {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            level: Level::Normal,
            calm_ticks: 0,
        }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// One tick: under pressure, one level up at once; after `restore_ticks` calm ticks in a
    /// row, one level down; otherwise the level holds.
    pub fn decide(&mut self, load: &Load) -> Option<Change> {
        let policy = &self.policy;
        let cap = policy.memory_cap_bytes as f64;
        let own = load.own_bytes as f64;
        let pressure = if load.cpu_free < policy.min_free_cpu {
            Some(Cause::Cpu)
        } else if load.memory_free < policy.min_free_memory {
            Some(Cause::Memory)
        } else if own > cap * OWN_PRESSURE {
            Some(Cause::OwnMemory)
        } else {
            None
        };
        if let Some(cause) = pressure {
            self.calm_ticks = 0;
            return self.move_to(self.level.up(), cause);
        }
        let calm = load.cpu_free >= policy.min_free_cpu + policy.restore_margin
            && load.memory_free >= policy.min_free_memory + policy.restore_margin
            && own <= cap * OWN_CALM;
        if !calm || self.level == Level::Normal {
            self.calm_ticks = 0;
            return None;
        }
        self.calm_ticks += 1;
        if self.calm_ticks < policy.restore_ticks.max(1) {
            return None;
        }
        self.calm_ticks = 0;
        self.move_to(self.level.down(), Cause::Calm)
    }

    fn move_to(&mut self, to: Level, cause: Cause) -> Option<Change> {
        let from = self.level;
        self.level = to;
        (from != to).then_some(Change { from, to, cause })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn policy() -> Policy {
        Policy {
            min_free_cpu: 0.15,
            min_free_memory: 0.15,
            restore_margin: 0.10,
            restore_ticks: 3,
            memory_cap_bytes: 100 * MIB,
        }
    }

    fn load(cpu_free: f64, memory_free: f64, own_mib: u64) -> Load {
        Load {
            cpu_free,
            memory_free,
            own_bytes: own_mib * MIB,
        }
    }

    #[test]
    fn pressure_climbs_one_level_a_tick_and_stops_at_the_top() {
        let mut limiter = Limiter::new(policy());
        let busy = load(0.05, 0.5, 10);
        let mut levels = Vec::new();
        for _ in 0..5 {
            limiter.decide(&busy);
            levels.push(limiter.level());
        }
        assert_eq!(
            levels,
            [
                Level::SampleNames,
                Level::ShedLow,
                Level::ShedNormal,
                Level::ShedNormal,
                Level::ShedNormal
            ]
        );
    }

    #[test]
    fn each_resource_is_pressure_on_its_own_and_named() {
        let cases = [
            (load(0.149, 0.9, 10), Cause::Cpu),
            (load(0.9, 0.149, 10), Cause::Memory),
            // 91 MiB of a 100 MiB cap: above 90%.
            (load(0.9, 0.9, 91), Cause::OwnMemory),
        ];
        for (measured, cause) in cases {
            let mut limiter = Limiter::new(policy());
            let change = limiter.decide(&measured).expect("a change");
            assert_eq!(change.cause, cause, "{measured:?}");
            assert_eq!(
                (change.from, change.to),
                (Level::Normal, Level::SampleNames)
            );
        }
        // Exactly at the minimum is enough free.
        let mut limiter = Limiter::new(policy());
        assert_eq!(limiter.decide(&load(0.15, 0.15, 90)), None);
    }

    #[test]
    fn restores_one_level_per_calm_period_and_never_inside_the_margin() {
        let mut limiter = Limiter::new(policy());
        for _ in 0..3 {
            limiter.decide(&load(0.0, 0.5, 10));
        }
        assert_eq!(limiter.level(), Level::ShedNormal);
        // Free, but inside the margin (0.15 + 0.10): the level holds however long it lasts.
        for _ in 0..10 {
            assert_eq!(limiter.decide(&load(0.24, 0.5, 10)), None);
        }
        assert_eq!(limiter.level(), Level::ShedNormal);
        let calm = load(0.6, 0.6, 10);
        let mut ticks_to_normal = 0;
        while limiter.level() != Level::Normal {
            ticks_to_normal += 1;
            if let Some(change) = limiter.decide(&calm) {
                assert_eq!(change.cause, Cause::Calm);
                assert!(change.to < change.from);
            }
            assert!(ticks_to_normal < 100, "never restored");
        }
        assert_eq!(ticks_to_normal, 9, "three levels, three calm ticks each");
        assert_eq!(limiter.decide(&calm), None, "nothing below normal");
    }

    #[test]
    fn a_busy_tick_resets_the_calm_count() {
        let mut limiter = Limiter::new(policy());
        limiter.decide(&load(0.0, 0.5, 10));
        limiter.decide(&load(0.6, 0.6, 10));
        limiter.decide(&load(0.6, 0.6, 10));
        // The own-memory band between calm (75%) and pressure (90%) breaks the calm too.
        limiter.decide(&load(0.6, 0.6, 80));
        limiter.decide(&load(0.6, 0.6, 10));
        limiter.decide(&load(0.6, 0.6, 10));
        assert_eq!(limiter.level(), Level::SampleNames);
        limiter.decide(&load(0.6, 0.6, 10));
        assert_eq!(limiter.level(), Level::Normal);
    }

    #[test]
    fn xdp_keeps_all_then_a_sample_then_none() {
        assert_eq!(Level::Normal.name_query_keep(), shed_keep::ALL);
        assert_eq!(Level::SampleNames.name_query_keep(), NAME_QUERY_SAMPLE);
        assert_eq!(Level::ShedLow.name_query_keep(), shed_keep::NONE);
        assert_eq!(Level::ShedNormal.name_query_keep(), shed_keep::NONE);
    }
}
