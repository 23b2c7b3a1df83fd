"""newsmon notifier service: alerts to Slack."""
