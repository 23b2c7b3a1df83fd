"""newsmon alerter service."""
