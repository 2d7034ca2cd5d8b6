//! The faults and the proof that each one happened: kill -9 of every process (the pid died of
//! SIGKILL and left `/proc`; then it restarts and is ready again), a broker restart (its port
//! refused connections in between), PostgreSQL connections cut (backends terminated > 0), a
//! RetailCRM 503 storm, 5-second answers and hangs (the simulator's fault rules used up), a
//! revoked key (both deployments reported `auth_failed`, then recovered after the restore),
//! and poison records (checked against the dead-letter topics at the end).

use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use dealflow_shared::events::{Envelope, Event, HealthStatus};
use dealflow_simulator::{AccountHandle, ErrorBody, FaultAction, FaultRule};
use dealflow_testkit::Broker;
use rand::Rng;
use rand::rngs::StdRng;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::deploy::{Deployment, Kind};
use crate::poison;
use crate::postgres::Scratch;

/// One injected fault and its checked effect.
#[derive(Debug, Clone)]
pub struct Record {
    /// The fault type (`kill -9`, `broker restart`, …): the summary groups by it.
    pub kind: &'static str,
    pub target: String,
    /// Seconds since the chaos started.
    pub at: f64,
    pub effect: String,
    pub verified: bool,
}

/// A scheduled fault.
#[derive(Debug, Clone)]
enum Fault {
    /// Process `index` of deployment `deployment`.
    Kill {
        deployment: usize,
        index: usize,
    },
    BrokerRestart,
    PostgresCut,
    /// A fault rule on a simulator account.
    Rule {
        kind: &'static str,
        account: usize,
        rule: FaultRule,
    },
    /// The end of a time-bounded rule (the storm) on an account.
    EndStorm {
        account: usize,
    },
    /// Poison into the Kafka deployment's `order-changed` topic (the embedded log's poison is
    /// written while the all-in-one is down after a kill).
    KafkaPoison {
        deployment: usize,
    },
}

/// A simulator rule whose use is checked at the end of the chaos.
#[derive(Debug)]
struct PendingRule {
    record: usize,
    account: usize,
    id: u64,
    count: u32,
    /// Hits needed to call it verified (all of them for counted rules).
    need: u32,
    /// Hits when a time-bounded rule was removed.
    ended: Option<(u32, Duration)>,
    added_at: tokio::time::Instant,
}

const STORM_KIND: &str = "RetailCRM 503 storm";
/// The storm: every RetailCRM call of the account answers 503 for this long.
const STORM: Duration = Duration::from_secs(15);
/// The storm rule's count: "until removed" with a way to tell how many requests it hit.
const STORM_CEILING: u32 = 1_000_000;
/// Requests the storm must have hit to count as a storm.
const STORM_MIN_HITS: u32 = 5;

/// Runs the schedule and keeps the records.
#[derive(Debug)]
pub struct Injector {
    pub deployments: Vec<Deployment>,
    pub broker: Option<Broker>,
    pg: Option<Arc<Scratch>>,
    accounts: Vec<AccountHandle>,
    api: Api,
    pub records: Vec<Record>,
    pending: Vec<PendingRule>,
    /// Poison payloads injected per deployment (the dead-letter topic must hold exactly these).
    pub poison: Vec<Vec<Vec<u8>>>,
    started: tokio::time::Instant,
    /// Readiness probes of restarted processes, by record.
    readiness: Vec<(usize, JoinHandle<Result<Duration, String>>)>,
}

/// How long a restarted process may take to be ready again: a Kafka consumer rejoining its
/// group waits out the killed member's session first (and a later fault may hit meanwhile).
const READY_AGAIN: Duration = Duration::from_secs(180);

/// Polls `/readyz` until it answers 200; how long that took.
async fn ready_probe(http: &reqwest::Client, base: &str) -> Result<Duration, String> {
    let started = tokio::time::Instant::now();
    while started.elapsed() < READY_AGAIN {
        if crate::process::is_ready(http, base).await {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("{base}/readyz not 200 within {READY_AGAIN:?}"))
}

/// Kills per process: each target several times, the enricher (the stateful consumer) most.
fn kills_for(kind: Kind, index: usize) -> usize {
    match (kind, index) {
        (Kind::AllInOne, _) => 3,
        (Kind::Split, 1) => 3,
        (Kind::Split, _) => 2,
    }
}

impl Injector {
    pub fn new(
        deployments: Vec<Deployment>,
        broker: Option<Broker>,
        pg: Option<Arc<Scratch>>,
        accounts: Vec<AccountHandle>,
        api: Api,
    ) -> Self {
        let poison = vec![Vec::new(); deployments.len()];
        Self {
            deployments,
            broker,
            pg,
            accounts,
            api,
            records: Vec::new(),
            pending: Vec::new(),
            poison,
            started: tokio::time::Instant::now(),
            readiness: Vec::new(),
        }
    }

    fn record(&mut self, kind: &'static str, target: String, effect: String, verified: bool) {
        let at = self.started.elapsed().as_secs_f64();
        println!(
            "  [{at:6.1}s] {kind} {target}: {effect}{}",
            if verified { "" } else { "  (NOT VERIFIED)" }
        );
        self.records.push(Record {
            kind,
            target,
            at,
            effect,
            verified,
        });
    }

    /// The seeded schedule: `(seconds after start, fault)`, sorted.
    fn schedule(&self, rng: &mut StdRng, chaos: Duration) -> Vec<(f64, Fault)> {
        let span = chaos.as_secs_f64();
        let at = |rng: &mut StdRng| rng.random_range(4.0..(span - 12.0).max(5.0));
        let mut faults = Vec::new();
        for (d, deployment) in self.deployments.iter().enumerate() {
            let count = match deployment.endpoints.kind {
                Kind::Split => 3,
                Kind::AllInOne => 1,
            };
            for index in 0..count {
                for _ in 0..kills_for(deployment.endpoints.kind, index) {
                    faults.push((
                        at(rng),
                        Fault::Kill {
                            deployment: d,
                            index,
                        },
                    ));
                }
            }
            if deployment.endpoints.kind == Kind::Split {
                faults.push((at(rng), Fault::KafkaPoison { deployment: d }));
            }
        }
        if self.broker.is_some() {
            faults.push((at(rng), Fault::BrokerRestart));
        }
        if self.pg.is_some() {
            faults.push((at(rng), Fault::PostgresCut));
            faults.push((at(rng), Fault::PostgresCut));
        }
        // RetailCRM's failures hit the account whose key stays valid: on the other one they
        // would keep the worker backing off, and the revoked key would go unnoticed.
        let storm_account = 0;
        let slow_account = 0;
        let storm = FaultAction::Status {
            code: 503,
            body: ErrorBody::Html,
        };
        let storm_at = at(rng);
        faults.push((
            storm_at,
            Fault::Rule {
                kind: STORM_KIND,
                account: storm_account,
                rule: FaultRule::next("/api/v5/", STORM_CEILING, storm),
            },
        ));
        faults.push((
            storm_at + STORM.as_secs_f64(),
            Fault::EndStorm {
                account: storm_account,
            },
        ));
        faults.push((
            at(rng),
            Fault::Rule {
                kind: "RetailCRM 5s answers",
                account: slow_account,
                rule: FaultRule::next("/api/v5/", 8, FaultAction::Latency { ms: 5000 }),
            },
        ));
        faults.push((
            at(rng),
            Fault::Rule {
                kind: "RetailCRM hangs (client timeout)",
                account: slow_account,
                rule: FaultRule::next("/api/v5/orders", 2, FaultAction::Hang),
            },
        ));
        faults.sort_by(|a, b| a.0.total_cmp(&b.0));
        faults
    }

    /// Injects every scheduled fault at its moment.
    pub async fn run(&mut self, rng: &mut StdRng, chaos: Duration) -> anyhow::Result<()> {
        self.started = tokio::time::Instant::now();
        let schedule = self.schedule(rng, chaos);
        println!("fault schedule: {} faults over {chaos:?}", schedule.len());
        for (at, fault) in schedule {
            tokio::time::sleep_until(self.started + Duration::from_secs_f64(at)).await;
            match fault {
                Fault::Kill { deployment, index } => self.kill(rng, deployment, index).await?,
                Fault::BrokerRestart => self.restart_broker(rng).await,
                Fault::PostgresCut => self.cut_postgres().await?,
                Fault::Rule {
                    kind,
                    account,
                    rule,
                } => self.add_rule(kind, account, rule),
                Fault::EndStorm { account } => self.end_storm(account),
                Fault::KafkaPoison { deployment } => self.kafka_poison(deployment).await?,
            }
        }
        Ok(())
    }

    async fn kill(
        &mut self,
        rng: &mut StdRng,
        deployment: usize,
        index: usize,
    ) -> anyhow::Result<()> {
        let dep = self.deployments[deployment].clone();
        let downtime = Duration::from_millis(rng.random_range(200..2500));
        let mut processes = dep.processes.lock().await;
        let process = &mut processes[index];
        let name = process.name.clone();
        if !process.alive() {
            // Not our kill: the process had died by itself. A finding, then back to work.
            process.spawn()?;
            let ready = process.wait_ready(&self.api.http).await;
            drop(processes);
            let effect = format!(
                "the process had already EXITED ON ITS OWN before the kill; restarted ({})",
                if ready.is_ok() { "ready" } else { "not ready" }
            );
            self.record("kill -9", name, effect, false);
            return Ok(());
        }
        let evidence = process.kill9()?;
        tokio::time::sleep(downtime).await;
        // The embedded log belongs to the all-in-one: poison goes in while it is down.
        let mut poisoned = 0;
        if dep.endpoints.kind == Kind::AllInOne && self.poison[deployment].is_empty() {
            let integration = &dep.endpoints.integrations[0].id;
            let payloads = poison::payloads(&format!("{name} {}", evidence.pid), integration)?;
            poison::inject(&dep.endpoints.bus_config, integration, &payloads).await?;
            poisoned = payloads.len();
            self.poison[deployment] = payloads;
            // The log's writer task lets go of the file lock a moment after the last handle.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        process.spawn()?;
        let base = process.base.clone();
        drop(processes);
        // Readiness is awaited on the side: a Kafka consumer that rejoins its group may wait
        // out the dead member's session, and the next faults must not wait for that.
        let http = self.api.http.clone();
        let probe = tokio::spawn(async move { ready_probe(&http, &base).await });
        let effect = format!(
            "pid {} died of signal {:?}, gone from /proc: {}; down {:.1}s, restarted{}",
            evidence.pid,
            evidence.signal,
            evidence.gone_from_proc,
            downtime.as_secs_f64(),
            if poisoned > 0 {
                format!("; {poisoned} poison records written to its log while down")
            } else {
                String::new()
            },
        );
        self.record("kill -9", name, effect, evidence.verified());
        self.readiness.push((self.records.len() - 1, probe));
        Ok(())
    }

    async fn restart_broker(&mut self, rng: &mut StdRng) {
        let Some(broker) = self.broker.as_mut() else {
            return;
        };
        let port = broker.port();
        broker.stop();
        let refused = TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_millis(500),
        )
        .is_err();
        let downtime = Duration::from_millis(rng.random_range(1000..4000));
        tokio::time::sleep(downtime).await;
        broker.restart().await;
        let back = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok();
        self.record(
            "broker restart",
            format!("nisshi :{port} (sqlite storage)"),
            format!(
                "port refused connections while down: {refused}; down {:.1}s; accepting again: {back}",
                downtime.as_secs_f64()
            ),
            refused && back,
        );
    }

    async fn cut_postgres(&mut self) -> anyhow::Result<()> {
        // The projector may be between connections (or just killed): try for a while.
        let Some(pg) = self.pg.clone() else {
            return Ok(());
        };
        let mut killed = 0;
        for _ in 0..25 {
            killed = pg.cut_connections().await?;
            if killed > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.record(
            "PostgreSQL connections cut",
            format!("database {}", pg.name),
            format!("pg_terminate_backend ended {killed} backend(s)"),
            killed > 0,
        );
        Ok(())
    }

    fn add_rule(&mut self, kind: &'static str, account: usize, rule: FaultRule) {
        let count = rule.count.unwrap_or(0);
        let id = self.accounts[account].add_fault(rule.clone());
        self.record(
            kind,
            format!("account {account}"),
            if count == STORM_CEILING {
                format!(
                    "rule {:?} on {} for at least {STORM:?}",
                    rule.action, rule.path_prefix
                )
            } else {
                format!(
                    "rule {:?} on {} for the next {count} requests",
                    rule.action, rule.path_prefix
                )
            },
            false,
        );
        self.pending.push(PendingRule {
            record: self.records.len() - 1,
            account,
            id,
            count,
            need: if count == STORM_CEILING {
                STORM_MIN_HITS
            } else {
                count
            },
            ended: None,
            added_at: tokio::time::Instant::now(),
        });
    }

    /// Hits of a rule so far (a used-up rule is gone from the list).
    fn hits(&self, p: &PendingRule) -> u32 {
        let left = self.accounts[p.account]
            .faults()
            .iter()
            .find(|(id, _)| *id == p.id)
            .and_then(|(_, r)| r.count)
            .unwrap_or(0);
        p.count - left
    }

    fn end_storm(&mut self, account: usize) {
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.account == account && p.count == STORM_CEILING && p.ended.is_none())
        else {
            return;
        };
        let p = &self.pending[i];
        let hits = self.hits(p);
        let at = self.started.elapsed().as_secs_f64();
        if hits < p.need {
            // dealflow was backing off this account: the storm goes on until it hit enough
            // requests to be a storm (ended by `settle` at the latest).
            println!(
                "  [{at:6.1}s] {STORM_KIND} account {account}: only {hits} requests answered 503 after {STORM:?}; it goes on"
            );
            return;
        }
        let lasted = p.added_at.elapsed();
        self.accounts[account].remove_fault(p.id);
        self.pending[i].ended = Some((hits, lasted));
        println!(
            "  [{at:6.1}s] {STORM_KIND} account {account} ended after {lasted:.0?}: {hits} requests answered 503"
        );
    }

    async fn kafka_poison(&mut self, deployment: usize) -> anyhow::Result<()> {
        let endpoints = self.deployments[deployment].endpoints.clone();
        let integration = &endpoints.integrations[0].id;
        let payloads = poison::payloads(&format!("{} kafka", endpoints.name), integration)?;
        // The broker may be restarting: retry the publish for a while.
        let mut result = Err(anyhow::anyhow!("not tried"));
        for _ in 0..10 {
            result = poison::inject(&endpoints.bus_config, integration, &payloads).await;
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        result?;
        self.record(
            "poison records",
            format!("{} order-changed", endpoints.name),
            format!("{} invalid records published", payloads.len()),
            true,
        );
        self.poison[deployment] = payloads;
        Ok(())
    }

    /// Awaits the readiness probes, then waits (bounded) until every simulator rule was used up,
    /// marks those records verified,
    /// then clears what is left so the convergence runs without injected faults.
    pub async fn settle(&mut self, within: Duration) {
        for (record, probe) in std::mem::take(&mut self.readiness) {
            let outcome = probe.await.unwrap_or_else(|e| Err(e.to_string()));
            let r = &mut self.records[record];
            match outcome {
                Ok(took) => {
                    r.effect = format!(
                        "{}; ready again {:.1}s after the restart",
                        r.effect,
                        took.as_secs_f64()
                    )
                }
                Err(e) => {
                    r.effect = format!("{}; NOT ready again: {e}", r.effect);
                    r.verified = false;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let open: usize = self
                .pending
                .iter()
                .filter(|p| p.ended.is_none() && self.hits(p) < p.need)
                .count();
            if open == 0 || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for i in 0..self.pending.len() {
            let p = &self.pending[i];
            let (served, lasted) = p
                .ended
                .unwrap_or_else(|| (self.hits(p), p.added_at.elapsed()));
            let (need, count) = (p.need, p.count);
            let record = &mut self.records[p.record];
            record.effect = if count == STORM_CEILING {
                format!(
                    "{}; in {lasted:.0?} the simulator answered {served} requests with it",
                    record.effect
                )
            } else {
                format!(
                    "{}; the simulator served it to {served} of {count} requests",
                    record.effect
                )
            };
            record.verified = served >= need;
        }
        for a in &self.accounts {
            a.clear_faults();
        }
    }
}

/// Whether the `health` topic holds an `auth_failed` report for the integration.
async fn health_event(config: &dealflow_shared::config::Config, integration: &str) -> bool {
    let topic = dealflow_shared::topics::Topics::new(config.topic_prefix.clone()).health();
    let Ok(records) = crate::topics::read_all(config, &topic).await else {
        return false;
    };
    records.iter().any(|r| {
        r.key.as_deref() == Some(integration)
            && matches!(
                Envelope::decode(&r.payload).map(|e| e.event),
                Ok(Event::IntegrationHealthChanged(h)) if h.status == HealthStatus::AuthFailed
            )
    })
}

/// How long every deployment has to report a revoked key.
const REVOKED_REPORT_WITHIN: Duration = Duration::from_secs(150);

/// Revokes account `account`'s key, waits until every deployment reports `auth_failed`,
/// restores it and sets it again on each deployment. Returns the record (its `verified` is
/// completed by the final health check).
pub async fn revoke_key(
    api: &Api,
    deployments: &[Deployment],
    account: &AccountHandle,
    index: usize,
    started: tokio::time::Instant,
) -> Record {
    let key = account.api_key();
    let revoked = account.revoke_key(0).is_ok();
    // A Kafka consumer killed just before may be without partitions for a session timeout
    // (45 s by default), so the deployments get a generous, shared deadline.
    let mut reported = Vec::new();
    let deadline = tokio::time::Instant::now() + REVOKED_REPORT_WITHIN;
    let mut on_the_bus = Vec::new();
    // The read API first; the `health` topic after a while.
    let mut next_bus_look = tokio::time::Instant::now() + Duration::from_secs(30);
    while reported.len() < deployments.len() && tokio::time::Instant::now() < deadline {
        for d in deployments {
            let e = &d.endpoints;
            if reported.contains(&e.name) {
                continue;
            }
            let integration = &e.integrations[index].id;
            let health = api.health(&e.read_base, integration).await;
            if health.ok().as_deref() == Some("auth_failed") {
                reported.push(e.name);
            } else if e.kind == Kind::Split
                && tokio::time::Instant::now() >= next_bus_look
                && health_event(&e.bus_config, integration).await
            {
                // The projector may be without partitions for a while after its kills; the
                // enricher's report on the `health` topic is the report itself.
                reported.push(e.name);
                on_the_bus.push(e.name);
            }
        }
        if tokio::time::Instant::now() >= next_bus_look {
            next_bus_look = tokio::time::Instant::now() + Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = account.restore_key(0);
    let mut key_set = Vec::new();
    for d in deployments {
        let e = &d.endpoints;
        let integration = &e.integrations[index].id;
        // Ingest may be down (killed) or RetailCRM failing the key check: retry.
        for _ in 0..60 {
            if api.set_key(&e.write_base, integration, &key).await.is_ok() {
                key_set.push(e.name);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let verified =
        revoked && reported.len() == deployments.len() && key_set.len() == deployments.len();
    let at = started.elapsed().as_secs_f64();
    let effect = format!(
        "auth_failed reported by {reported:?}{}; key restored and set again on {key_set:?}",
        if on_the_bus.is_empty() {
            String::new()
        } else {
            format!(" ({on_the_bus:?} on the health topic, its read API lagging)")
        }
    );
    println!("  [{at:6.1}s] revoked key account {index}: {effect}");
    Record {
        kind: "revoked key",
        target: format!("account {index}"),
        at,
        effect,
        verified,
    }
}
