"""newsmon: a streaming news monitor for North Korea-Russia military cooperation stories."""

__version__ = "0.1.0"
