"""newsmon fetcher service."""
