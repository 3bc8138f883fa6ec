"""The demo's counter application: HTTP counters kept in one gen_server."""
