//! Startup glue shared by every entry point: the bus the configuration asks for.

use std::sync::Arc;

use crate::bus::{BusError, EmbeddedLog, EventBus, KafkaBus, KafkaBusConfig};
use crate::config::Config;
use crate::topics::{DEFAULT_PARTITIONS, Topics};

/// File name of the embedded log under the data directory.
pub const EMBEDDED_LOG_FILE: &str = "events.db";

/// Opens the bus (Kafka when brokers are configured, else the embedded log under the data
/// directory) and makes sure every topic exists.
pub async fn open_bus(config: &Config, client_id: &str) -> Result<Arc<dyn EventBus>, BusError> {
    let bus: Arc<dyn EventBus> = match &config.kafka {
        Some(kafka) => {
            let mut settings = KafkaBusConfig::new(kafka.brokers.clone());
            settings.client_id = client_id.to_string();
            settings.properties.extend(kafka.properties.clone());
            Arc::new(KafkaBus::new(settings)?)
        }
        None => {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| BusError::Fatal {
                message: format!("cannot create the data directory {}", config.data_dir.display()),
                source: Some(Box::new(e)),
            })?;
            Arc::new(EmbeddedLog::open(config.data_dir.join(EMBEDDED_LOG_FILE)).await?)
        }
    };
    bus.ensure_topics(&Topics::new(config.topic_prefix.clone()).specs(DEFAULT_PARTITIONS))
        .await?;
    Ok(bus)
}
