"""Code every newsmon service uses: settings, message schemas, Kafka helpers, metrics, logging."""
