//! `veil`: the one binary. See `veil --help`.
#![forbid(unsafe_code)]

mod cli;
mod lambda;
mod lambda_doctor;
mod logging;
mod runtime;
mod sample_tenant;

use std::process::ExitCode;

/// mimalloc instead of the system allocator. Under load (`cargo bench
/// --bench proxy`, 16 requests at a time) glibc's malloc and free took about
/// an eighth of Veil's CPU time: each request frees buffers over 64 KiB,
/// which makes glibc consolidate its free lists, and the sanitizer allocates
/// many small strings (pseudonyms and their memo). With mimalloc Veil's CPU
/// time per request fell 15 %. Built without transparent huge pages
/// (`no_thp`): with them its arenas made idle RSS 44 MB instead of 18 MB.
/// One cost: an input read whole while its size is unknown (`veil sanitize`
/// from stdin) peaks higher, 38.5 MB instead of 23.5 MB for a 10.3 MB page,
/// as a growing buffer is copied where glibc remapped it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> ExitCode {
    // Under the Lambda runtime the same binary hosts the proxy there.
    let result = if veil_proxy::env_var(runtime::ENV_LAMBDA_RUNTIME_API).is_some()
        && std::env::args().len() <= 1
    {
        lambda::run()
    } else {
        cli::run(cli::Cli::parse())
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veil: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
