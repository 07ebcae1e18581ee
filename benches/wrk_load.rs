//! What `scripts/bench.sh` needs around an outside load generator (wrk):
//!
//! ```sh
//! # N distinct payment_intent.succeeded deliveries, each signed now under
//! # SECRET, written as ready HTTP/1.1 requests for benches/wrk/replay.lua
//! # (each record: its length in 8 decimal digits, then the request):
//! wrk_load requests --count N --secret SECRET --out FILE [--path /webhooks/stripe]
//! # A Stripe stand-in for the daemon's runner: answers every object GET
//! # with a realistic object of that id (after DELAY ms: Stripe's own
//! # latency, 0 by default); prints its base URL on stdout and serves until
//! # stdin closes or it is killed:
//! wrk_load fake [--delay-ms DELAY]
//! # An application that takes every forwarded delivery and does nothing
//! # (200 at once), for the forwarding benchmark; same URL/stdin contract:
//! wrk_load noop
//! ```
//! Signed at generation time: replay them within the endpoint's tolerance
//! (300 s by default).

mod common;

use std::io::{BufWriter, Write};
use std::net::TcpListener;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use stripe_hookd::testing::trigger::scenario::new_id;
use stripe_hookd::testing::trigger::{signature_header, Scenario};

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn requests(args: &[String]) -> anyhow::Result<()> {
    let count: usize = flag(args, "--count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let secret = flag(args, "--secret").context("--secret whsec_… is required")?;
    let out = flag(args, "--out").context("--out FILE is required")?;
    let path = flag(args, "--path").unwrap_or_else(|| "/webhooks/stripe".to_owned());
    // One realistic event; each request gets its own event id and payment
    // intent id (distinct events, distinct objects), signed under `secret`.
    let s = Scenario::new(false, "2025-03-31.basil");
    let template = s
        .event("payment_intent.succeeded")
        .context("no payment_intent.succeeded fixture")?
        .to_string();
    let (evt, pi) = (
        serde_json::from_str::<serde_json::Value>(&template)?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        s.payment_intent.clone(),
    );
    anyhow::ensure!(
        template.matches(&evt).count() == 1,
        "the event id is not unique in the template"
    );
    let mut file = BufWriter::new(std::fs::File::create(&out).with_context(|| out.clone())?);
    let mut bytes = 0usize;
    for _ in 0..count {
        // Random ids, as Stripe's are (sequential ones would make the
        // unique index's inserts look cheaper than they are).
        let body = template
            .replace(&evt, &new_id("evt"))
            .replace(&pi, &new_id("pi"));
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\
             Accept: */*; q=0.5, application/xml\r\nCache-Control: no-cache\r\n\
             Content-Type: application/json; charset=utf-8\r\nStripe-Signature: {}\r\nContent-Length: {}\r\n\r\n{body}",
            signature_header(&secret, &body),
            body.len()
        );
        write!(file, "{:08}", request.len())?;
        file.write_all(request.as_bytes())?;
        bytes += body.len();
    }
    file.flush()?;
    eprintln!(
        "wrote {count} signed payment_intent.succeeded deliveries to {out} (body {} bytes each)",
        bytes / count.max(1)
    );
    Ok(())
}

fn fake(args: &[String]) -> anyhow::Result<()> {
    let delay = match flag(args, "--delay-ms") {
        Some(v) => v
            .parse::<u64>()
            .with_context(|| format!("--delay-ms {v}: not a number of milliseconds"))?,
        None => 0,
    };
    let delay = std::time::Duration::from_millis(delay);
    serve(move || {
        App::new().default_service(web::to(move |req: actix_web::HttpRequest| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            common::stripe_any_object(req).await
        }))
    })
}

/// Answers 200 to everything, reading the body first (as an app would).
fn noop() -> anyhow::Result<()> {
    serve(|| {
        App::new().default_service(web::to(|_body: web::Bytes| async {
            actix_web::HttpResponse::Ok().body("ok")
        }))
    })
}

/// Serves `app` on one worker at a free port; prints its base URL on stdout
/// and serves until stdin closes (the script ends) or the process is killed.
fn serve<F, A>(app: F) -> anyhow::Result<()>
where
    F: Fn() -> App<A> + Send + Clone + 'static,
    A: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        println!("http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let server = HttpServer::new(app)
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await?;
        handle.stop(false).await;
        Ok(())
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    match args.get(1).map(String::as_str) {
        Some("requests") => requests(&args),
        Some("fake") => fake(&args),
        Some("noop") => noop(),
        _ => {
            anyhow::bail!("usage: wrk_load requests --count N --secret S --out FILE | fake [--delay-ms D] | noop")
        }
    }
}
