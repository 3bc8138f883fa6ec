"""The observer: a live view of a node, its metrics and its event-loop lag."""
