"""Where the platform's data leaves Kafka: Kafka Connect connectors, deployed through the worker's REST API."""
