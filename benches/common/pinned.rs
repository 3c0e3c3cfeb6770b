//! A process pinned to one core (servers on core 0, Redis and the load on
//! core 1), killed when dropped.

use std::process::{Child, Command, Stdio};

pub(crate) struct Pinned(Child);

impl Pinned {
    /// Runs `program args` under `taskset -c core`, output discarded.
    pub(crate) fn start(core: &str, program: &str, args: &[&str]) -> Self {
        let child = Command::new("taskset")
            .args(["-c", core, program])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program}: {err}"));
        Self(child)
    }

    /// This bench binary again, as `serve ARGS..`, on core 0.
    pub(crate) fn server(args: &[&str]) -> Self {
        let exe = std::env::current_exe().expect("current exe");
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        Self::start("0", exe.to_str().expect("a UTF-8 path"), &all)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
