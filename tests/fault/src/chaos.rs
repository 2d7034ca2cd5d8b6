//! The run from start to verdict: simulator, broker, scratch database and both deployments
//! up; accounts connected and backfilled; the change script, the webhook senders, the fault
//! injector and the key revocation running together; then the bounded convergence wait, the
//! comparison with the truth, the dead letters, the secrets scan and the summary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dealflow_simulator::{AccountConfig, AccountHandle, SimConfig, Simulator};
use dealflow_testkit::{Broker, Storage, unique_prefix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::crm_proxy;
use crate::deploy::{self, Deployment, RunSecrets};
use crate::faults::{self, Injector};
use crate::postgres::Scratch;
use crate::scenario::{self, Announcement};
use crate::secrets::{self, Needle, Scan};
use crate::summary::Summary;
use crate::verify;
use crate::{Args, seed_from_clock};

/// Which account gets its key revoked. After the restore its deals must converge like the
/// other account's: the key is set again through the API (a settings change unparks the
/// account at once), and reconciliation picks up what changed while it was parked.
const REVOKED_ACCOUNT: usize = 1;
/// Webhooks held back and sent in random order (reordering on purpose).
const REORDER_WINDOW: usize = 40;
/// Webhooks in flight per deployment.
const SENDERS: usize = 8;

/// What the suite decided.
#[derive(Debug)]
pub struct Outcome {
    pub passed: bool,
    pub work_dir: PathBuf,
}

/// What one deployment's webhook sender did.
#[derive(Debug, Clone, Default)]
pub struct SenderStats {
    pub sent: usize,
    pub accepted: usize,
    pub unanswered: usize,
    pub other: usize,
}

/// Sends the announcements to one deployment, reordered within a window, several in flight.
async fn send_webhooks(
    api: Api,
    hooks: Vec<String>,
    mut rx: mpsc::UnboundedReceiver<Announcement>,
    mut rng: StdRng,
) -> SenderStats {
    let mut stats = SenderStats::default();
    let mut window: Vec<Announcement> = Vec::new();
    let mut in_flight = JoinSet::new();
    let mut open = true;
    while open || !window.is_empty() {
        if open && window.len() < REORDER_WINDOW {
            match rx.recv().await {
                Some(a) => {
                    window.push(a);
                    continue;
                }
                None => open = false,
            }
        }
        if window.is_empty() {
            continue;
        }
        let a = window.swap_remove(rng.random_range(0..window.len()));
        while in_flight.len() >= SENDERS {
            tally(&mut stats, in_flight.join_next().await);
        }
        let (api, url, form) = (api.clone(), hooks[a.account].clone(), rng.random::<u8>());
        in_flight.spawn(async move { api.webhook(&url, a.order, form).await });
        stats.sent += 1;
    }
    while let Some(done) = in_flight.join_next().await {
        tally(&mut stats, Some(done));
    }
    stats
}

fn tally(stats: &mut SenderStats, done: Option<Result<Option<u16>, tokio::task::JoinError>>) {
    match done {
        Some(Ok(Some(202))) => stats.accepted += 1,
        Some(Ok(None)) => stats.unanswered += 1,
        Some(_) => stats.other += 1,
        None => {}
    }
}

/// Live orders of an account right now.
fn live_orders(account: &AccountHandle) -> usize {
    account.inspect(|s| s.orders.values().filter(|o| o.is_live()).count())
}

/// Restarts any process that exited without the suite killing it; returns their names.
async fn revive(api: &Api, deployments: &[Deployment]) -> Vec<String> {
    let mut revived = Vec::new();
    for d in deployments {
        let mut processes = d.processes.lock().await;
        for p in processes.iter_mut() {
            if !p.alive() {
                revived.push(format!(
                    "{} exited on its own (see {})",
                    p.name,
                    p.log.display()
                ));
                if p.spawn().is_ok() {
                    let _ = p.wait_ready(&api.http).await;
                }
            }
        }
    }
    revived
}

pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    println!("fault suite seed {seed} (repeat with --seed {seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let work_dir = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => tempfile::Builder::new()
            .prefix("dealflow-fault-")
            .tempdir()?
            .keep(),
    };
    println!("logs and data under {}", work_dir.display());

    // The simulated RetailCRM: two accounts sharing the orders; both deployments read them,
    // so the simulator's own limit allows both; each deployment's proxies hold it to the
    // real 10/s (`crm_proxy`).
    let to_create = args.orders / 20;
    let generated = args.orders - to_create;
    let mut sim_config = SimConfig::new(2, 0).with_seed(seed);
    for (i, account) in sim_config.accounts.iter_mut().enumerate() {
        *account =
            AccountConfig::with_orders(generated / 2 + if i == 0 { generated % 2 } else { 0 });
        account.rate_limit = 30;
    }
    let sim = Simulator::start(sim_config).await?;
    let accounts: Vec<AccountHandle> = sim.accounts().to_vec();

    let secrets = RunSecrets::generate(&mut rng);
    let api = Api::new(&secrets.api_token);
    let wants = |name: &str| args.only.as_deref().is_none_or(|only| only == name);
    let mut deployments = Vec::new();
    let (mut broker, mut pg) = (None, None);
    if wants("split") {
        let b = Broker::start_with(Storage::Sqlite).await;
        let p = Arc::new(Scratch::create(&args.postgres, seed).await?);
        println!("nisshi at {}, scratch database {}", b.bootstrap(), p.name);
        deployments.push(deploy::split(
            &work_dir,
            &args.dealflow_bin,
            &secrets,
            &b.bootstrap(),
            &unique_prefix(),
            &p.url(),
        )?);
        (broker, pg) = (Some(b), Some(p));
    }
    if wants("allinone") {
        deployments.push(deploy::all_in_one(&work_dir, &args.dealflow_bin, &secrets)?);
    }
    let result = run_with(
        &args,
        seed,
        &mut rng,
        &accounts,
        &mut deployments,
        broker,
        pg.clone(),
        &api,
        &work_dir,
        to_create,
    )
    .await;
    for d in &deployments {
        d.stop().await;
    }
    if let Some(pg) = &pg
        && let Err(e) = pg.drop_database().await
    {
        eprintln!("could not drop the scratch database: {e:#}");
    }
    sim.shutdown().await;
    let passed = result?;
    if passed && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    Ok(Outcome { passed, work_dir })
}

#[allow(clippy::too_many_arguments)]
async fn run_with(
    args: &Args,
    seed: u64,
    rng: &mut StdRng,
    accounts: &[AccountHandle],
    deployments: &mut [Deployment],
    broker: Option<Broker>,
    pg: Option<Arc<Scratch>>,
    api: &Api,
    work_dir: &std::path::Path,
    to_create: usize,
) -> anyhow::Result<bool> {
    let mut summary = Summary {
        seed,
        ..Summary::default()
    };
    for d in deployments.iter() {
        d.start(&api.http)
            .await
            .with_context(|| format!("starting {}", d.endpoints.name))?;
    }
    let removed_before: Vec<BTreeSet<u64>> = accounts
        .iter()
        .map(|a| {
            a.inspect(|s| {
                s.orders
                    .values()
                    .filter(|o| !o.is_live())
                    .map(|o| o.id)
                    .collect()
            })
        })
        .collect();
    println!("both deployments ready; connecting the accounts (backfill of every order)");
    let crm_urls = crm_proxy::Urls::default();
    // One proxy per deployment and account: each deployment is held to the real 10/s.
    let mut limiters = Vec::new();
    for d in deployments.iter_mut() {
        let mut proxies = Vec::new();
        for (i, a) in accounts.iter().enumerate() {
            let (proxy, limiter) = crm_proxy::start(&a.url(), crm_urls.clone()).await?;
            limiters.push((format!("{} account {i}", d.endpoints.name), limiter));
            proxies.push(proxy);
        }
        for (i, a) in accounts.iter().enumerate() {
            let integration = api
                .connect(
                    &d.endpoints.write_base,
                    i,
                    &proxies[i],
                    &a.api_key(),
                    3650,
                    None,
                )
                .await?;
            d.endpoints.integrations.push(integration);
        }
        // Tenant tokens across the deployment's processes (issue 15).
        let e = &d.endpoints;
        let tokens = crate::tenants::issue_and_revoke(api, &e.write_base, &e.read_base)
            .await
            .with_context(|| format!("{}: tenant tokens", e.name))?;
        println!(
            "{}: a tenant token works on every process; a revoked one was refused by the read side after {} ms",
            e.name,
            tokens.revoked_after.as_millis()
        );
        // A second integration on account 0, in that tenant: two integrations on one account
        // share its budget (DESIGN §7.4). It gets no webhooks: backfill and reconciliation
        // bring its deals.
        let second = api
            .connect(
                &d.endpoints.write_base,
                0,
                &proxies[0],
                &accounts[0].api_key(),
                3650,
                Some(&tokens.tenant),
            )
            .await?;
        d.endpoints.tenant_tokens = Some(tokens);
        d.endpoints.integrations.push(second);
    }
    let backfill_start = tokio::time::Instant::now();
    for d in deployments.iter() {
        for integration in &d.endpoints.integrations {
            let want = live_orders(&accounts[integration.account]);
            let e = &d.endpoints;
            crate::wait_for(Duration::from_secs(180), "the backfill", || async {
                let n = api
                    .all_deals(&e.read_base, &integration.id)
                    .await
                    .ok()?
                    .len();
                (n >= want).then_some(())
            })
            .await
            .with_context(|| format!("{} account {}", e.name, integration.account))?;
        }
    }
    println!(
        "backfill done in {:.0}s; chaos for {}s",
        backfill_start.elapsed().as_secs_f64(),
        args.chaos_secs
    );

    // The chaos: change script → senders, faults, key revocation, all at once.
    let chaos = Duration::from_secs(args.chaos_secs);
    let chaos_start = tokio::time::Instant::now();
    let mut senders = Vec::new();
    let mut channels = Vec::new();
    for d in deployments.iter() {
        let (tx, rx) = mpsc::unbounded_channel();
        channels.push(tx);
        let hooks = d
            .endpoints
            .integrations
            .iter()
            .map(|i| i.webhook_url.clone())
            .collect();
        senders.push((
            d.endpoints.name.to_owned(),
            tokio::spawn(send_webhooks(
                api.clone(),
                hooks,
                rx,
                StdRng::seed_from_u64(rng.random()),
            )),
        ));
    }
    let script = tokio::spawn(scenario::run(
        StdRng::seed_from_u64(rng.random()),
        accounts.to_vec(),
        args.webhooks,
        to_create,
        chaos,
        channels,
    ));
    // In the first third, so the report, the restore and the recovery fit in the run.
    let revoke_at =
        Duration::from_secs_f64(rng.random_range(8.0..(chaos.as_secs_f64() / 3.0).max(9.0)));
    let revoke = {
        let (api, deployments, account) = (
            api.clone(),
            deployments.to_vec(),
            accounts[REVOKED_ACCOUNT].clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(revoke_at).await;
            faults::revoke_key(&api, &deployments, &account, REVOKED_ACCOUNT, chaos_start).await
        })
    };
    let mut injector = Injector::new(
        deployments.to_vec(),
        broker,
        pg.clone(),
        accounts.to_vec(),
        api.clone(),
    );
    let injected = injector.run(rng, chaos).await;
    summary.script = script.await?;
    for (name, sender) in senders {
        summary.webhooks.push((name, sender.await?));
    }
    let mut revoke_record = revoke.await?;
    injected?;
    println!(
        "faults stopped; waiting for restarted processes to be ready and the simulator's fault rules to be used up"
    );
    injector.settle(Duration::from_secs(60)).await;
    summary.problems.extend(revive(api, deployments).await);

    // Convergence: bounded, with progress.
    let converge_start = tokio::time::Instant::now();
    let deadline = converge_start + Duration::from_secs(args.converge_secs);
    loop {
        summary.problems.extend(revive(api, deployments).await);
        let truths: Vec<Value> = accounts.iter().map(|a| a.truth()).collect();
        let mut counts = Vec::new();
        for d in deployments.iter() {
            let n = match verify::compare(api, &d.endpoints, &truths, &removed_before, false).await
            {
                Ok(r) => {
                    for m in r.mismatches.iter().take(3) {
                        println!("    e.g. {m}");
                    }
                    r.mismatches.len()
                }
                Err(e) => {
                    println!("  {}: read API not answering ({e:#})", d.endpoints.name);
                    usize::MAX
                }
            };
            counts.push((d.endpoints.name, n));
        }
        let elapsed = converge_start.elapsed().as_secs_f64();
        println!(
            "  converging [{elapsed:5.0}s]: {}",
            counts
                .iter()
                .map(|(n, c)| if *c == usize::MAX {
                    format!("{n} ?")
                } else {
                    format!("{n} {c} mismatches")
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        if counts.iter().all(|(_, c)| *c == 0) {
            summary.converged_after = Some(elapsed);
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    // The final comparison, stage histories included.
    let truths: Vec<Value> = accounts.iter().map(|a| a.truth()).collect();
    for d in deployments.iter() {
        let report = verify::compare(api, &d.endpoints, &truths, &removed_before, true).await?;
        summary.reports.push((d.endpoints.name.to_owned(), report));
    }
    let mut healthy = Vec::new();
    for d in deployments.iter() {
        let e = &d.endpoints;
        let status = api
            .health(&e.read_base, &e.integrations[REVOKED_ACCOUNT].id)
            .await
            .unwrap_or_else(|e| format!("unknown ({e})"));
        healthy.push(format!("{}: {status}", e.name));
        revoke_record.verified &= status == "ok";
    }
    revoke_record.effect = format!(
        "{}; health at the end: {}",
        revoke_record.effect,
        healthy.join(", ")
    );
    summary.faults = injector.records.clone();
    summary.faults.push(revoke_record);

    // Tenants and tokens survived every kill and restart.
    for d in deployments.iter() {
        let e = &d.endpoints;
        if let Some(tokens) = &e.tenant_tokens {
            for problem in
                crate::tenants::still_right(api, &e.write_base, &e.read_base, tokens).await
            {
                summary.problems.push(format!("{}: {problem}", e.name));
            }
        }
    }

    // Metrics of every process while they still run.
    let mut scan = Scan::default();
    let needles = needles(accounts, deployments);
    for d in deployments.iter() {
        for (name, base) in d.bases().await {
            match api.metrics(&base).await {
                Ok(text) => {
                    scan.text(&needles, &text, &format!("/metrics of {name}"));
                    let file = work_dir.join(format!("{}.metrics", name.replace('/', "-")));
                    let _ = std::fs::write(file, &text);
                }
                Err(e) => summary
                    .problems
                    .push(format!("{name}: /metrics did not answer ({e:#})")),
            }
        }
    }

    // Dead letters: Kafka while running; the embedded log once its owner stopped.
    for (i, d) in deployments.iter().enumerate() {
        d.stop().await;
        let found = poison_check(&injector.poison[i], &d.endpoints.bus_config).await;
        summary.dead_letters.push((
            d.endpoints.name.to_owned(),
            injector.poison[i].len(),
            found.0,
            found.1,
        ));
    }

    // The account's limit, as each deployment's proxy saw it (DESIGN §7.4).
    for (label, limiter) in &limiters {
        let (total, busiest, refused) = limiter.report();
        println!(
            "RetailCRM budget {label}: {total} requests, busiest second {busiest}, {refused} refused with 503"
        );
        if busiest > crm_proxy::LIMIT_PER_SECOND {
            summary.problems.push(format!(
                "{label}: {busiest} requests in one second (RetailCRM allows {})",
                crm_proxy::LIMIT_PER_SECOND
            ));
            println!("  the busiest second of {label} (time, caller's port, path):");
            for what in limiter.busiest_window() {
                println!("    {what}");
            }
        }
    }

    // The secrets scan over everything the run left.
    let urls = crm_urls.all();
    if urls.is_empty() {
        summary
            .problems
            .push("no request reached RetailCRM through the recording proxy".to_owned());
    }
    println!("URLs sent to RetailCRM: {} recorded", urls.len());
    for url in &urls {
        scan.text(&needles, url, "a URL sent to RetailCRM");
    }
    let bodies = api.error_bodies();
    for body in &bodies {
        scan.text(&needles, body, "an error body the suite received");
    }
    // Kept for whoever reads a failed run (and scanned once more with the work directory).
    let _ = std::fs::write(work_dir.join("error-bodies.txt"), bodies.join("\n"));
    if let Some(pg) = &pg {
        match pg.dump_text().await {
            Ok(dump) => scan.text(&needles, &dump, &format!("database {}", pg.name)),
            Err(e) => summary
                .problems
                .push(format!("could not dump the scratch database: {e:#}")),
        }
    }
    scan.tree(&needles, work_dir)?;
    if let Some(broker) = &injector.broker {
        scan.tree(&needles, broker.dir())?;
    }
    if args.only.is_some() {
        summary
            .problems
            .push("only one deployment ran (--only): the suite needs both".to_owned());
    }
    summary.scan = scan;
    Ok(summary.print())
}

/// Every RetailCRM key of every account, every webhook token of every integration and every
/// tenant token of every deployment.
fn needles(accounts: &[AccountHandle], deployments: &[Deployment]) -> Vec<Needle> {
    let mut needles = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        let mut k = 0;
        while let Ok(key) = a.key(k) {
            needles.push(Needle {
                label: format!("API key {k} of account {i}"),
                value: key,
            });
            k += 1;
        }
    }
    for d in deployments {
        for integration in &d.endpoints.integrations {
            needles.push(Needle {
                label: format!(
                    "webhook token of {} account {}",
                    d.endpoints.name, integration.account
                ),
                value: secrets::token_of(&integration.webhook_url),
            });
        }
        if let Some(tokens) = &d.endpoints.tenant_tokens {
            for (what, token) in [("kept", &tokens.kept), ("revoked", &tokens.revoked)] {
                // The token, and the token without its recognisable prefix.
                for value in [token.clone(), token["dft_".len()..].to_owned()] {
                    needles.push(Needle {
                        label: format!("{what} tenant token of {}", d.endpoints.name),
                        value,
                    });
                }
            }
        }
    }
    needles
}

/// Compares the dead-letter topic with the poison: `(letters found, problems)`.
async fn poison_check(
    injected: &[Vec<u8>],
    config: &dealflow_shared::config::Config,
) -> (usize, Vec<String>) {
    let found = match crate::poison::dead_letters(config).await {
        Ok(found) => found,
        Err(e) => return (0, vec![format!("could not read the dead letters: {e:#}")]),
    };
    let total = found.values().map(Vec::len).sum();
    let mut problems = Vec::new();
    if injected.is_empty() {
        problems.push("no poison was injected".to_owned());
    }
    let want: BTreeMap<&[u8], ()> = injected.iter().map(|p| (p.as_slice(), ())).collect();
    for p in injected {
        if !found.contains_key(p) {
            problems.push(format!(
                "poison not dead-lettered: {}",
                String::from_utf8_lossy(&p[..p.len().min(60)])
            ));
        }
    }
    for (payload, stages) in &found {
        let shown = String::from_utf8_lossy(&payload[..payload.len().min(60)]).into_owned();
        if !want.contains_key(payload.as_slice()) {
            problems.push(format!("unexpected dead letter ({stages:?}): {shown}"));
        } else {
            // Copies from redeliveries are one letter already; a stage twice here means the
            // same bytes were published twice (a poison publish retried across a broker
            // restart), which is reported, not a failure.
            let mut distinct = stages.clone();
            distinct.sort();
            distinct.dedup();
            if distinct.len() != stages.len() {
                println!(
                    "  note: one payload dead-lettered twice by one stage {stages:?}: {shown}"
                );
            }
        }
    }
    (total, problems)
}
