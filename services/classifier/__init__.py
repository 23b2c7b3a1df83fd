"""newsmon classifier service."""
