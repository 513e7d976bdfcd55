//! composition: the README's stack (reqwest-retry outside the token layer,
//! 3 retries 10–200 ms apart) while the token endpoint fails its next N
//! requests, then recovers. Requests that failed and token requests made,
//! beside the mutex cache under the same retry policy (its errors counted
//! as transient, the most generous reading).

use std::sync::Arc;

use bearer_testkit::{TestServer, TokenFault};
use futures::future::join_all;
use reqwest_bearer::BearerRetryStrategy;
use reqwest_bearer::reqwest_middleware::{Error, Middleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{RetryTransientMiddleware, Retryable, RetryableStrategy};
use std::time::Duration;

use crate::common::{
    Impl, Line, Mode, Recorded, Report, client_within, get_ok, http_client, source,
};

/// Every failure of the baseline's own middleware is worth a retry.
struct AnyErrorTransient;

impl RetryableStrategy for AnyErrorTransient {
    fn handle(&self, res: &Result<reqwest::Response, Error>) -> Option<Retryable> {
        match res {
            Err(_) => Some(Retryable::Transient),
            Ok(r) if r.status().is_server_error() => Some(Retryable::Transient),
            Ok(_) => None,
        }
    }
}

fn retry_layer(imp: Impl) -> Arc<dyn Middleware> {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(10), Duration::from_millis(200))
        .build_with_max_retries(3);
    match imp {
        Impl::Ours => Arc::new(RetryTransientMiddleware::new_with_policy_and_strategy(
            policy,
            BearerRetryStrategy::default(),
        )),
        _ => Arc::new(RetryTransientMiddleware::new_with_policy_and_strategy(
            policy,
            AnyErrorTransient,
        )),
    }
}

pub async fn run(mode: Mode, report: &mut Report) {
    let callers = mode.pick(20, 100);
    let http = http_client();
    for failures in [1u64, 2, 3, 5] {
        for imp in [Impl::Ours, Impl::MutexCache] {
            let server = TestServer::start().await;
            let control = server.control();
            control.fail_next_token_requests(
                failures,
                TokenFault::ServiceUnavailable { retry_after: None },
            );
            let c = client_within(
                Some(retry_layer(imp)),
                imp,
                &server,
                &http,
                Recorded::new(source(&server)),
                None,
            );
            let url = server.api_url("/api/echo");
            let results = join_all((0..callers).map(|_| get_ok(&c.http, &url))).await;
            let failed = results.iter().filter(|ok| !**ok).count();
            report.push(
                Line::new("composition", imp.name())
                    .field("endpoint_failures", failures)
                    .field("requests", callers)
                    .field("failed", failed)
                    .field("token_requests", control.counters().token_requests),
            );
        }
    }
}
