//! `bearer-testkit serve --port N`: the test server as a process, for
//! clients in other languages.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use bearer_testkit::TestServer;

const USAGE: &str = "usage: bearer-testkit serve [--port N] [--other-origin-port N] \
[--client-id ID] [--client-secret SECRET] [--username NAME] [--password PASSWORD] \
[--token-lifetime SECS] [--rotate-refresh-tokens]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match builder_from(&args) {
        Ok(builder) => {
            let server = builder.start().await;
            println!("base_url={}", server.base_url());
            println!("issuer={}", server.issuer());
            println!("token_url={}", server.token_url());
            println!("other_origin_url={}", server.other_origin_url("/"));
            println!("client_id={}", server.client_id());
            // A test server's throwaway credentials: printing them is the point.
            println!("client_secret={}", server.client_secret());
            println!("username={}", server.username());
            println!("password={}", server.password());
            let _ = tokio::signal::ctrl_c().await;
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn builder_from(args: &[String]) -> Result<bearer_testkit::TestServerBuilder, String> {
    let mut args = args.iter();
    if args.next().map(String::as_str) != Some("serve") {
        return Err("expected the `serve` subcommand".into());
    }
    let mut builder = TestServer::builder();
    let (mut client_id, mut client_secret) = ("test-client".to_owned(), "test-secret".to_owned());
    let (mut username, mut password) = ("alice".to_owned(), "wonderland".to_owned());
    while let Some(flag) = args.next() {
        if flag == "--rotate-refresh-tokens" {
            builder = builder.rotate_refresh_tokens(true);
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--port" => builder = builder.port(port(&value)?),
            "--other-origin-port" => builder = builder.other_origin_port(port(&value)?),
            "--client-id" => client_id = value,
            "--client-secret" => client_secret = value,
            "--username" => username = value,
            "--password" => password = value,
            "--token-lifetime" => {
                builder = builder.token_lifetime(Duration::from_secs(number(&value)?));
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(builder
        .client(client_id, client_secret)
        .user(username, password))
}

fn port(value: &str) -> Result<u16, String> {
    value.parse().map_err(|_| format!("not a port: {value}"))
}
