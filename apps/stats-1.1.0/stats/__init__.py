"""The demo's stats application: requests counted per route."""
