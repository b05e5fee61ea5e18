//! The `mod8` command.
//!
//! Until the flows land (issue "mod8-app: the three flows end to end"), it says what each
//! subcommand will do and which backend each part of the data layer would use.

use clap::{Parser, Subcommand};

/// mod8: the data layer of a product that registers users, tracks what they do and
/// personalises what they see.
#[derive(Parser)]
#[command(name = "mod8", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registration, analytics and personalisation flows end to end.
    Demo,
}

fn backend(var: &str, production: &str, embedded: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => format!("{production} ({var})"),
        _ => format!("{embedded} (set {var} for {production})"),
    }
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => {
            println!("mod8 demo: the flows are not built yet; the demo will run:");
            println!("  1. registration: validate, store user + address + outbox row, publish UserData, cache profile");
            println!("  2. real-time analytics: count events in the cache, fan out to analytics consumers");
            println!("  3. personalisation: profile, predictions and recommendations, cached for an hour");
            println!("backends:");
            println!(
                "  sql:      {}",
                backend("MOD8_POSTGRES_URL", "PostgreSQL", "SQLite in memory")
            );
            println!(
                "  docs:     {}",
                backend("MOD8_MONGODB_URL", "MongoDB", "in-memory document store")
            );
            println!(
                "  cache:    {}",
                backend("MOD8_REDIS_URL", "Redis", "in-process cache")
            );
            println!(
                "  messages: {}",
                backend("MOD8_AMQP_URL", "RabbitMQ", "in-process broker")
            );
        }
    }
}
