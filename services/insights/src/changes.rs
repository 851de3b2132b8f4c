//! When the figures change: any replica that applies events notifies on a
//! Postgres channel at commit, and every replica turns that into a change
//! number its watchers wait on. A poll of the cursors backs the
//! notification up, so a lost one delays a snapshot by a second at most.

use std::time::Duration;

use onestop_platform::supervise::Supervisor;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::store;

/// Longest a change goes unnoticed when its notification is lost.
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Changes(watch::Receiver<u64>);

impl Changes {
    /// Listens until shutdown, as the supervised loop `changes`.
    pub fn spawn(pool: PgPool, supervisor: &Supervisor) -> Self {
        let (sender, receiver) = watch::channel(0u64);
        supervisor.spawn("changes", move |beat| {
            let (pool, sender) = (pool.clone(), sender.clone());
            async move {
                let mut mark = store::change_mark(&pool).await.ok();
                let mut listener: Option<PgListener> = None;
                loop {
                    if listener.is_none() {
                        listener = listen(&pool).await;
                    }
                    let notified = async {
                        match listener.as_mut() {
                            Some(listener) => listener.try_recv().await.map(|n| n.is_some()),
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = beat.stopping() => return Ok(()),
                        received = notified => match received {
                            Ok(true) => {
                                sender.send_modify(|version| *version += 1);
                                continue;
                            }
                            // The connection dropped: notifications may be lost.
                            _ => listener = None,
                        },
                        _ = tokio::time::sleep(POLL) => {}
                    }
                    let now = store::change_mark(&pool).await.ok();
                    if now.is_some() && now != mark {
                        mark = now;
                        sender.send_modify(|version| *version += 1);
                    }
                }
            }
        });
        Self(receiver)
    }

    /// The current change number, and a receiver that wakes on the next.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.clone()
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(store::CHANGED_CHANNEL).await.ok()?;
    Some(listener)
}
