use std::process::ExitCode;

/// jemalloc, with its background thread returning freed memory to the system within
/// seconds: after a burst of expensive reads the server goes back to near its idle size
/// (issue 15). It also serves SQLite's allocations (unprefixed `malloc`), whose page
/// caches would otherwise stay in the system allocator's arenas.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    modelwatch::cli::main()
}
