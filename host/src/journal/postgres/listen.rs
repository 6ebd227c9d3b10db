//! LISTEN/NOTIFY: one connection per host wakes its workers when another host queued jobs, and
//! renews leases at once when a running job was asked to cancel.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use tokio_postgres::NoTls;

use super::{CANCEL_CHANNEL, CHANNEL, connect::Tls, lease::Shared};

/// One connection per host that LISTENs and wakes the workers on each NOTIFY; reconnects after
/// a pause when the server goes away (polling covers the gap).
pub(super) async fn listen(config: tokio_postgres::Config, tls: Tls, shared: Arc<Shared>) {
    loop {
        let result = match &tls {
            Tls::Off => listen_once(&config, NoTls, &shared).await,
            Tls::Rustls(tls) => listen_once(&config, tls.clone(), &shared).await,
        };
        if let Err(error) = result {
            tracing::debug!(
                error = error.to_string(),
                "journal LISTEN connection lost; reconnecting"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    shared: &Shared,
) -> Result<(), tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {CHANNEL}; LISTEN {CANCEL_CHANNEL}");
    let listening = client.batch_execute(&statement);
    tokio::pin!(listening);
    // The connection must be polled for the LISTEN to complete.
    loop {
        tokio::select! {
            done = &mut listening => { done?; break; }
            message = messages.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            },
        }
    }
    // Anything queued (or cancelled) while not listening is found by these wake-ups.
    shared.changed_from(0);
    shared.renew_now.notify_one();
    // The client (still borrowed by the finished LISTEN) lives as long as the connection is read.
    while let Some(message) = messages.next().await {
        if let tokio_postgres::AsyncMessage::Notification(notice) = message? {
            match notice.channel() {
                CANCEL_CHANNEL => shared.renew_now.notify_one(),
                _ => {
                    if let Some(from) = queued_from(notice.payload(), &shared.instance) {
                        shared.changed_from(from);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Where a NOTIFY on the queue's channel says new jobs start: `"INSTANCE LOWEST_ID"` from a
/// batch of deliveries, none for this journal's own (its workers were handed them), and the
/// whole queue for an empty notice (jobs queued again: a hand-back or a rescue).
fn queued_from(payload: &str, instance: &str) -> Option<i64> {
    match payload.split_once(' ') {
        Some((sender, _)) if sender == instance => None,
        Some((_, lowest)) => Some(lowest.parse().unwrap_or(0)),
        None => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::queued_from;

    #[test]
    fn a_notice_says_where_to_read_from_and_a_hosts_own_is_skipped() {
        assert_eq!(queued_from("b7 1200", "a1"), Some(1200));
        assert_eq!(queued_from("a1 1200", "a1"), None);
        assert_eq!(queued_from("", "a1"), Some(0));
        assert_eq!(queued_from("b7 garbage", "a1"), Some(0));
    }
}
