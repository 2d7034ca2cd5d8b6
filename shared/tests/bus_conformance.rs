//! Conformance suite of the event bus: the same cases against both backends.
//!
//! Every case in `conformance!` runs twice, as `embedded::<case>` (a SQLite file in a temporary
//! directory) and `kafka::<case>` (a real nisshi broker from the testkit, three partitions per
//! topic). Backend-specific behaviour has its own tests (`embedded_only::*`, `kafka_only::*`).
//! Topic and group names are unique per test.
//!
//! "Nothing was redelivered" is checked without waiting for silence: the test publishes a
//! sentinel record to every partition and reads until it has seen them all; per-partition order
//! means any redelivery would have come first.
//!
//! Layout: `support` (harness, helpers), `cases` (shared cases), `embedded_only`, `kafka_only`.

#[path = "bus_conformance/cases.rs"]
mod cases;
#[path = "bus_conformance/embedded_only.rs"]
mod embedded_only;
#[path = "bus_conformance/kafka_only.rs"]
mod kafka_only;
#[path = "bus_conformance/support.rs"]
mod support;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::support::Harness::embedded().await).await;
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::cases::$case(super::support::Harness::kafka().await).await;
                }
            )*
        }
    };
}

conformance!(
    records_round_trip,
    ordering_per_key,
    at_least_once_after_crash,
    resume_after_restart,
    replay_from_beginning,
    replay_since_a_time,
    no_duplicates_after_clean_commit,
    end_offsets,
    dead_letters,
    poll_wakes_on_publish,
    unknown_topic_is_refused,
    ensure_topics_is_idempotent,
    committed_offsets,
    keys_land_where_partition_for_says,
);
