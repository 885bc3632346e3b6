//! Samples the machine for the panels: utilisation of each core and this process's resident
//! memory, via `sysinfo`, once per tick. Cheap (a read of /proc/stat and /proc/self/statm on Linux).

use super::metrics::HostSample;
use std::time::Instant;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

pub struct HostSampler {
    sys: System,
    pid: Option<Pid>,
    last: Instant,
    primed: bool,
}

impl HostSampler {
    pub fn new() -> Self {
        let mut sys = System::new();
        // CPU usage is a difference between two readings: take the first one now.
        sys.refresh_cpu_usage();
        HostSampler {
            sys,
            pid: sysinfo::get_current_pid().ok(),
            last: Instant::now(),
            primed: false,
        }
    }

    /// A fresh sample; `None` for the very first call, whose CPU figures would be meaningless.
    pub fn sample(&mut self) -> Option<HostSample> {
        let now = Instant::now();
        let interval_s = now.duration_since(self.last).as_secs_f64();
        if interval_s < sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.as_secs_f64() && !self.primed {
            return None;
        }
        self.last = now;
        self.sys.refresh_cpu_usage();
        let mut rss = 0;
        if let Some(pid) = self.pid {
            self.sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                false,
                ProcessRefreshKind::nothing().with_memory(),
            );
            rss = self.sys.process(pid).map_or(0, |p| p.memory());
        }
        self.primed = true;
        Some(HostSample {
            cpu: self.sys.cpus().iter().map(|c| c.cpu_usage()).collect(),
            rss,
            interval_s,
        })
    }
}
