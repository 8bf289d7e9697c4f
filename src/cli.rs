//! The command line: `serve` (default), `openapi`, `db up|status`, `verify`, `repair`,
//! `cleanup [--dry-run]`, `--help`.

use std::process::ExitCode;

use crate::{api, config::Settings, service::admin::AdminService, startup};

pub const USAGE: &str = "\
genesis — chat-history server for LLM chat apps

Usage: genesis [COMMAND]

Commands:
  serve        Apply migrations and serve HTTP (the default)
  openapi      Print the OpenAPI spec (JSON) to stdout
  db up        Apply pending database migrations
  db status    List migrations and whether each is applied
  verify       Check every layer against the others and the audit trail (exit 1 on any failure)
  repair       Re-sync what verify finds missing from the cache tables and the audit trail
  cleanup      Delete expired unmigrated guests from every layer (--dry-run: only count them)
  help         Show this text (also -h, --help)

Configuration: config/default.toml (built in) → the file in GENESIS_CONFIG →
GENESIS__SECTION__KEY variables → DATABASE_URL, REDIS_URL, UPSTASH_REDIS_URL,
REDIS_USE_LOCAL. See README.md.
";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve,
    OpenApi,
    DbUp,
    DbStatus,
    Verify,
    Repair,
    Cleanup { dry_run: bool },
    Help,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["serve"] => Ok(Command::Serve),
        ["openapi"] => Ok(Command::OpenApi),
        ["db", "up"] => Ok(Command::DbUp),
        ["db", "status"] => Ok(Command::DbStatus),
        ["verify"] => Ok(Command::Verify),
        ["repair"] => Ok(Command::Repair),
        ["cleanup"] => Ok(Command::Cleanup { dry_run: false }),
        ["cleanup", "--dry-run"] => Ok(Command::Cleanup { dry_run: true }),
        ["help"] | ["-h"] | ["--help"] => Ok(Command::Help),
        _ => Err(format!("unknown command: {}", words.join(" "))),
    }
}

/// Runs `command`; the exit code says whether it worked.
pub async fn run(command: Command) -> ExitCode {
    match command {
        Command::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::OpenApi => {
            println!("{}", api::spec_json());
            ExitCode::SUCCESS
        }
        Command::Serve => report(async { startup::serve(Settings::load()?).await }.await),
        Command::DbUp => report(
            async {
                let settings = Settings::load()?;
                let store = startup::open_store(&settings).await?;
                println!("migrations applied");
                store.close().await;
                Ok(())
            }
            .await,
        ),
        Command::Verify => verify().await,
        Command::Repair => report(
            async {
                let settings = Settings::load()?;
                startup::require_existing_database(&settings)?;
                let store = startup::open_store(&settings).await?;
                let done = AdminService::new(store.clone())
                    .repair()
                    .await
                    .map_err(|e| startup::StartupError::Database(sea_orm::DbErr::Custom(e.to_string())))?;
                println!(
                    "repair: {} ledger rows added, {} messages re-synced, {} ledger rows marked synced, {} audit rows rebuilt",
                    done.mapping_rows_added, done.messages_resynced, done.mappings_marked_synced, done.audit_rows_added
                );
                store.close().await;
                Ok(())
            }
            .await,
        ),
        Command::Cleanup { dry_run } => report(
            async {
                let settings = Settings::load()?;
                startup::require_existing_database(&settings)?;
                let state = startup::build_state(settings, startup::Role::Command).await?;
                let done = state
                    .retention
                    .cleanup(dry_run)
                    .await
                    .map_err(|e| startup::StartupError::Database(sea_orm::DbErr::Custom(e.to_string())))?;
                let verb = if dry_run { "would delete" } else { "deleted" };
                println!(
                    "cleanup: {verb} {} expired guests with {} messages",
                    done.guests, done.messages
                );
                state.store.close().await;
                Ok(())
            }
            .await,
        ),
        Command::DbStatus => report(
            async {
                let settings = Settings::load()?;
                startup::require_existing_database(&settings)?;
                let store = crate::store::Store::connect(&settings).await?;
                for (name, applied) in store.migration_status().await? {
                    println!("{} {name}", if applied { "applied" } else { "pending" });
                }
                store.close().await;
                Ok(())
            }
            .await,
        ),
    }
}

/// Prints the verification report; exit code 1 when any check fails.
async fn verify() -> ExitCode {
    let result = async {
        let settings = Settings::load()?;
        startup::require_existing_database(&settings)?;
        let store = startup::open_store(&settings).await?;
        let report = AdminService::new(store.clone())
            .verify()
            .await
            .map_err(|e| startup::StartupError::Database(sea_orm::DbErr::Custom(e.to_string())))?;
        store.close().await;
        Ok::<_, startup::StartupError>(report)
    }
    .await;
    match result {
        Ok(report) => {
            for check in &report.checks {
                println!(
                    "{} {}: {}",
                    if check.ok { "ok  " } else { "FAIL" },
                    check.name,
                    check.detail
                );
            }
            println!(
                "{}",
                if report.ok {
                    "verify: ok"
                } else {
                    "verify: FAILED"
                }
            );
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("genesis: {err}");
            ExitCode::from(2)
        }
    }
}

fn report(result: Result<(), startup::StartupError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("genesis: {err}");
            ExitCode::FAILURE
        }
    }
}
