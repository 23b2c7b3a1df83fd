"""newsmon web: the analysts' page of alerts, stories and feeds (see app.py)."""
