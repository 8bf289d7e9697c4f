use std::process::ExitCode;

use genesis::cli;

// glibc's allocator keeps the 19 MiB argon2 buffers of every sign-up in its arenas (RSS grew to
// 450 MiB after 300 sign-ups in the benchmark); mimalloc hands huge blocks back to the OS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs to stderr: human-readable (colours only on a terminal), or JSON lines with
/// `GENESIS__LOG__FORMAT=json`. The level comes from `RUST_LOG`.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("GENESIS__LOG__FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> ExitCode {
    // One rustls crypto provider for the whole process (sqlx and redis both use rustls).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("genesis: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("genesis: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(command))
}
