//! Real programs the tests run (`redis-server`, `nginx`): found, or the
//! test is skipped, loudly; under `HYPERWS_REQUIRE_PEERS=1` (which
//! `.ci/run` sets) a missing one fails the test instead.

use std::io::Write;
use std::path::PathBuf;

/// Where `program` is installed (`PATH`, then `/usr/sbin`, where Debian
/// puts nginx), or `None` after saying which test is skipped and how to
/// install it.
pub fn find(program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        if std::env::var_os("HYPERWS_REQUIRE_PEERS").is_some_and(|v| v == "1") {
            panic!("{program} is required (HYPERWS_REQUIRE_PEERS=1): apt-get install {package}");
        }
        // Past the harness's capture: a passing test's prints are hidden,
        // and a skip must not look like a pass.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED {test}: {program} is not installed (apt-get install {package}); \
             CI sets HYPERWS_REQUIRE_PEERS=1 and fails instead ***\n"
        );
    }
    found
}

/// Returns from the test, skipped, when `program` is not installed.
#[macro_export]
macro_rules! require {
    ($program:literal, $package:literal) => {
        match $crate::common::peers::find($program, $package) {
            Some(path) => path,
            None => return,
        }
    };
}
